"""Estimates over seeds x held-out users, their confidence intervals and p-values, and the agreement of two
rankings.

One definition of every estimate, whatever the interval: a statistic of each seed's held-out users (theta_s: the
mean of their scores, their interquartile mean, the mean of paired differences, the fraction of users on which A
beats B), averaged over the seeds. A seed without per-user scores counts as one user with its overall score.

The seed is the unit that repeats: a seed's users share its training run, so no interval treats them as
independent of each other. Three intervals (`--ci`), each printed only from the number of seeds at which its
coverage was measured at 90 % or more (MIN_SEEDS; `cpep-bench coverage`, docs/statistics.md):

- t: Student t over the seeds' statistics (seeds - 1 degrees of freedom). Where every seed tests the same users
  (`Strata.crossed`: a dataset's fixed held-out users), the users' jackknife variance of the estimate is added, with
  Satterthwaite's degrees of freedom, so that the interval covers who is tested as well as how training went.
- bootstrap: the hierarchical percentile bootstrap of rliable (its `task_bootstrap` with seeds as tasks): seeds
  drawn with replacement, and within each drawn seed its users; where every seed tests the same users, one draw of
  users serves every seed (the pigeonhole bootstrap, Owen 2007).
- bca: scipy.stats.bootstrap's bias-corrected and accelerated interval of the seeds' statistics; it resamples
  seeds only, so it serves data whose users differ between seeds.

Each gives a two-sided p-value for a null value: the level at which its interval just reaches that value.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

CI_METHODS = ("t", "bootstrap", "bca")
DESIGNS = ("nested", "crossed")  # each seed draws its own users; every seed tests the same users
# The fewest seeds from which each interval's 95 % coverage stayed at 90 % or more in every simulated cell of a
# design (docs/statistics.md, made by `cpep-bench coverage`); with fewer, an estimate gets no interval. None: at
# no number of seeds (bca resamples seeds alone, which leaves out who is tested where every seed tests the same users).
MIN_SEEDS = {"t": {"nested": 2, "crossed": 3}, "bootstrap": {"nested": 20, "crossed": 20},
             "bca": {"nested": 20, "crossed": None}}
# A statistic that is a fraction of each seed's users (P(A > B), a point of a performance profile) is bounded, and
# where training noise dominates each seed's fraction lies near 0 or 1: its intervals need at least this many seeds.
FRACTION_SEEDS = 10
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so that a report is the same every time it is made
CHUNK_VALUES = 4_000_000  # drawn scores held in memory at once while resampling

Statistic = Callable[[np.ndarray], np.ndarray]  # (rows, users, columns), NaN past a row's users -> one per row


@dataclass(frozen=True)
class Interval:
    """An estimate over n seeds and its confidence interval; low and high are NaN where there is none (one seed,
    or fewer than the interval serves). p: two-sided p-value of the null value asked for (NaN: none asked)."""
    mean: float
    low: float
    high: float
    n: int
    p: float = math.nan

    @property
    def has_ci(self) -> bool:
        return not math.isnan(self.low)

    @property
    def excludes_zero(self) -> bool:
        return self.has_ci and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Strata:
    """Scores per (seed, user, column): the columns are variants or metrics matched on the same users."""
    values: np.ndarray  # (seeds, users, columns), NaN past a seed's users
    crossed: bool = False  # every seed tests the same users, in the same order

    @classmethod
    def of(cls, strata: Strata | Sequence, crossed: bool = False) -> Strata:
        """From one (users, columns) array per seed; crossed only where every seed has the same number of users."""
        if isinstance(strata, Strata):
            return strata
        arrays = [np.asarray(x, dtype=float) for x in strata]
        if not arrays:
            return cls(np.empty((0, 0, 0)), False)
        width = max(len(x) for x in arrays)
        padded = np.full((len(arrays), width, arrays[0].shape[1]), np.nan)
        for i, x in enumerate(arrays):
            padded[i, :len(x)] = x
        return cls(padded, crossed and width > 1 and len({len(x) for x in arrays}) == 1)

    @property
    def seeds(self) -> int:
        return self.values.shape[0]


@dataclass(frozen=True)
class Spread:
    """Where an estimate's variance comes from: the seeds' statistics vary between seeds (seed_var, their sample
    variance), and, where every seed tests the same users, the estimate varies with who is tested (user_var, the
    users' jackknife variance of the estimate, which more seeds do not shrink)."""
    seed_var: float
    seeds: int
    user_var: float = 0.0
    users: int = 0

    def se(self, seeds: int | None = None) -> float:
        """The estimate's standard error with `seeds` seeds (the ones measured by default) and the same users."""
        return math.sqrt(self.seed_var / (seeds or self.seeds) + self.user_var)

    def df(self, seeds: int | None = None) -> float:
        """Satterthwaite's degrees of freedom of se() ** 2 (seeds - 1 where users are not a term)."""
        s = seeds or self.seeds
        a, b = self.seed_var / s, self.user_var
        if b == 0 or self.users < 2:
            return s - 1.0
        if a == 0:
            return self.users - 1.0
        return (a + b) ** 2 / (a ** 2 / (s - 1) + b ** 2 / (self.users - 1))


def spread(strata: Strata | Sequence, statistic: Statistic) -> Spread:
    """The Spread of the estimate of `statistic` (two seeds or more)."""
    data = Strata.of(strata)
    theta = statistic(data.values)
    seed_var = float(np.var(theta, ddof=1))
    if not data.crossed:
        return Spread(seed_var, data.seeds)
    users = data.values.shape[1]
    jack = np.array([statistic(np.delete(data.values, u, axis=1)).mean() for u in range(users)])
    return Spread(seed_var, data.seeds, float((users - 1) / users * ((jack - jack.mean()) ** 2).sum()), users)


def estimate(strata: Strata | Sequence, statistic: Statistic, method: str = "t", level: float = 0.95,
             null: float | None = None, resamples: int = BOOTSTRAP_RESAMPLES, min_seeds: int | None = None) -> Interval:
    """The mean over seeds of the statistic of each seed's users, its `method` interval, and the p-value of `null`;
    no interval with fewer seeds than `min_seeds` (the method's MIN_SEEDS by default)."""
    if method not in CI_METHODS:
        raise ValueError(f"unknown CI method {method!r} (choose {', '.join(CI_METHODS)})")
    data = Strata.of(strata)
    if data.seeds == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    theta = statistic(data.values)
    point = float(theta.mean())
    needed = least_seeds(method, data.crossed, statistic) if min_seeds is None else min_seeds
    if needed is None or data.seeds < max(2, needed):
        return Interval(point, math.nan, math.nan, data.seeds)
    if method == "t":
        return _student(data, statistic, point, level, null)
    if method == "bootstrap":
        return _percentile(data, statistic, point, level, null, resamples)
    return _bca(theta, point, level, null, resamples)


def least_seeds(method: str, crossed: bool, statistic: Statistic | None = None) -> int | None:
    """The fewest seeds from which `method` prints an interval of `statistic` (MIN_SEEDS, FRACTION_SEEDS)."""
    found = MIN_SEEDS[method][DESIGNS[crossed]]
    if found is not None and getattr(statistic, "fraction", False):
        return max(found, FRACTION_SEEDS)
    return found


def fraction(statistic: Statistic) -> Statistic:
    """Marks a statistic whose value on a seed is a fraction of its users (FRACTION_SEEDS)."""
    statistic.fraction = True
    return statistic


def _constant(point: float, n: int, null: float | None) -> Interval:
    """No spread at all: the interval is the point (t's scale and BCa are undefined)."""
    return Interval(point, point, point, n, math.nan if null is None else float(point == null))


def _student(data: Strata, statistic: Statistic, point: float, level: float, null: float | None) -> Interval:
    found = spread(data, statistic)
    se, df = found.se(), found.df()
    if se == 0:
        return _constant(point, data.seeds, null)
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    p = math.nan if null is None else float(2 * stats.t.sf(abs(point - null) / se, df))
    return Interval(point, point - half, point + half, data.seeds, p)


def _percentile(data: Strata, statistic: Statistic, point: float, level: float, null: float | None,
                resamples: int) -> Interval:
    drawn = resampled(data, statistic, resamples)
    low, high = np.nanpercentile(drawn, [50 * (1 - level), 50 * (1 + level)])
    p = math.nan if null is None else min(1.0, 2 * min(np.mean(drawn <= null), np.mean(drawn >= null)))
    return Interval(point, float(low), float(high), data.seeds, float(p))


def resampled(data: Strata, statistic: Statistic, resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """The estimate of each hierarchical bootstrap resample (drawn with the fixed seed BOOTSTRAP_SEED)."""
    seeds, width, k = data.values.shape
    chunk = max(1, CHUNK_VALUES // (seeds * width * k))
    flat = data.values.reshape(seeds * width, k)  # np.take of flat positions: faster than two index arrays
    out = []
    if data.crossed:
        for picked, users in _crossed_draws(seeds, width, resamples, chunk):
            values = np.take(flat, picked[:, :, None] * width + users[:, None, :], axis=0)
            out.append(statistic(values.reshape(-1, width, k)).reshape(len(picked), seeds).mean(axis=1))
    else:
        counts = tuple(int(c) for c in (~np.isnan(data.values[..., 0])).sum(axis=1))
        for picked, users, missing in _nested_draws(counts, resamples, chunk):
            values = np.take(flat, picked[..., None] * width + users, axis=0)
            if missing.any():
                values[missing] = np.nan
            out.append(statistic(values.reshape(-1, width, k)).reshape(len(picked), seeds).mean(axis=1))
    return np.concatenate(out)


@functools.lru_cache(maxsize=8)
def _nested_draws(counts: tuple[int, ...], resamples: int, chunk: int) -> list[tuple[np.ndarray, ...]]:
    """The resamples' (drawn seeds (r, seeds), drawn users (r, seeds, width), positions beyond a drawn seed's
    users), in chunks: the same for every statistic of strata with these user counts, as the seed is fixed."""
    counts = np.asarray(counts)
    seeds, width = len(counts), int(counts.max())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    out = []
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        picked = rng.integers(seeds, size=(r, seeds))
        n = counts[picked][..., None]  # (r, seeds, 1): users of each drawn seed
        users = np.floor(rng.random((r, seeds, width)) * n).astype(np.int64)
        out.append((picked, users, np.arange(width) >= n))  # a seed with fewer users than the widest draws fewer
    return out


@functools.lru_cache(maxsize=8)
def _crossed_draws(seeds: int, users: int, resamples: int, chunk: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The resamples' (drawn seeds (r, seeds), drawn users (r, users)): one draw of users for every seed."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    out = []
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        out.append((rng.integers(seeds, size=(r, seeds)), rng.integers(users, size=(r, users))))
    return out


def _bca(theta: np.ndarray, point: float, level: float, null: float | None, resamples: int) -> Interval:
    if np.ptp(theta) == 0:
        return _constant(point, len(theta), null)

    def run(confidence: float, previous=None):
        with warnings.catch_warnings():  # few seeds: scipy warns of a degenerate distribution, we return NaN
            warnings.simplefilter("ignore")
            return stats.bootstrap((theta,), np.mean, method="BCa", confidence_level=confidence,
                                   n_resamples=0 if previous else resamples, bootstrap_result=previous,
                                   rng=BOOTSTRAP_SEED)

    found = run(level)
    low, high = (float(x) for x in found.confidence_interval)
    p = math.nan
    if null is not None:  # the level at which the interval just reaches `null`, by bisection
        inside, outside = 0.0, 1.0
        for _ in range(20):  # to within 1e-6
            middle = (inside + outside) / 2
            ci = run(middle, found).confidence_interval
            if ci.low <= null <= ci.high:
                outside = middle
            else:
                inside = middle
        p = 1 - (inside + outside) / 2
    return Interval(point, low, high, len(theta), p)


def interval(values: Iterable[float], method: str = "t", level: float = 0.95) -> Interval:
    """The mean of one value per seed and its interval (NaN and None left out)."""
    x = [v for v in values if v is not None and not math.isnan(v)]
    return estimate([[[v]] for v in x], mean_of, method, level)


def describe(method: str, level: float, crossed: bool = False) -> str:
    """The caption of an interval: its level and method."""
    pct = f"{level * 100:g} %"
    if method == "t":
        users = ("; where every seed tests the same users, plus the users' jackknife variance (Satterthwaite degrees "
                 "of freedom)") if crossed else ""
        return f"{pct} Student t interval over seeds (seeds - 1 degrees of freedom{users})"
    if method == "bootstrap":
        users = "one draw of users for every seed, as every seed tests the same users" if crossed else \
            "within each drawn seed its held-out users"
        return (f"{pct} hierarchical percentile bootstrap interval (seeds drawn with replacement, {users}; "
                f"{BOOTSTRAP_RESAMPLES:,} resamples, fixed seed {BOOTSTRAP_SEED})")
    return (f"{pct} BCa bootstrap interval of the seeds' estimates (scipy.stats.bootstrap, {BOOTSTRAP_RESAMPLES:,} "
            f"resamples, fixed seed {BOOTSTRAP_SEED})")


ESTIMATE = ("estimate: the mean over seeds of each seed's statistic over its held-out users (the seed's overall "
            "score where its record has no per-user scores)")


# statistics of each seed's users: (rows, users, columns) -> one value per row

def _mean(x: np.ndarray) -> np.ndarray:
    """The mean of each row, NaN left out (numpy's nanmean copies the array even where it holds no NaN)."""
    return np.nanmean(x, axis=1) if np.isnan(x).any() else x.mean(axis=1)


def mean_of(values: np.ndarray) -> np.ndarray:
    """The mean of the first column's scores."""
    return _mean(values[..., 0])


def iqm_of(values: np.ndarray) -> np.ndarray:
    """The interquartile mean of the first column's scores: scipy.stats.trim_mean(x, 0.25) of each row's values,
    NaN left out."""
    x = np.sort(values[..., 0], axis=1)  # NaN last
    n = (~np.isnan(x)).sum(axis=1)
    cut = n // 4
    sums = np.concatenate([np.zeros((len(x), 1)), np.nancumsum(x, axis=1)], axis=1)
    rows = np.arange(len(x))
    return (sums[rows, n - cut] - sums[rows, cut]) / (n - 2 * cut)


def difference_of(values: np.ndarray) -> np.ndarray:
    """The mean of the first column minus the second, over the users that hold both."""
    return _mean(values[..., 0] - values[..., 1])


def relative_of(values: np.ndarray) -> np.ndarray:
    """The mean of the first column over the mean of the second, minus 1 (a relative improvement)."""
    return _mean(values[..., 0]) / _mean(values[..., 1]) - 1


@fraction
def improvement_of(values: np.ndarray) -> np.ndarray:
    """The paired win rate of the first column (A) over the second (B): [A > B] + 1/2 [A = B], averaged over the
    users."""
    a, b = values[..., 0], values[..., 1]
    return _mean(np.where(np.isnan(a) | np.isnan(b), np.nan, (a > b) + 0.5 * (a == b)))


def above_of(threshold: float) -> Statistic:
    """The fraction of the first column's scores above `threshold` (a point of a performance profile)."""
    def above(values: np.ndarray) -> np.ndarray:
        x = values[..., 0]
        return _mean(np.where(np.isnan(x), np.nan, x > threshold))
    return fraction(above)


def iqm(strata: Strata | Sequence, level: float = 0.95, method: str = "t") -> Interval:
    return estimate(strata, iqm_of, method, level)


def improvement(strata: Strata | Sequence, level: float = 0.95, method: str = "t") -> Interval:
    """The paired win rate of A over B and its interval; p: that of no difference (0.5)."""
    return estimate(strata, improvement_of, method, level, null=0.5)


# two rankings

@dataclass(frozen=True)
class PairOrder:
    first: str
    second: str
    paper: float  # paper[first] - paper[second]
    ours: float
    verdict: str  # agrees, disagrees, tied in the paper, tied here


def _verdict(paper: float, ours: float) -> str:
    if paper == 0:
        return "tied in the paper"
    if ours == 0:
        return "tied here"
    return "agrees" if (paper > 0) == (ours > 0) else "disagrees"


def rank_agreement(ours: Mapping[str, float], paper: Mapping[str, float]) -> tuple[float, list[PairOrder]]:
    """Kendall's tau-b between the two rankings of the names both have, and the order of each pair.

    tau is NaN when fewer than two names are shared or one side is constant.
    """
    names = [n for n in paper if n in ours]
    pairs = [PairOrder(a, b, paper[a] - paper[b], ours[a] - ours[b], _verdict(paper[a] - paper[b], ours[a] - ours[b]))
             for a, b in itertools.combinations(names, 2)]
    if len(names) < 2 or len({paper[n] for n in names}) < 2 or len({ours[n] for n in names}) < 2:
        return math.nan, pairs
    return float(stats.kendalltau([paper[n] for n in names], [ours[n] for n in names]).statistic), pairs


AGREEMENT_NOTE = ("No interval for tau: the paper's numbers are fixed, and the uncertainty of our order is that of "
                  "each pair of variants, which the paired differences and P(variant > CPEP) carry with their "
                  "intervals; the p-value (scipy.stats.kendalltau, exact where neither side has ties) says whether "
                  "the agreement could be chance.")


def agreement_p(ours: Mapping[str, float], paper: Mapping[str, float]) -> float:
    """One-sided p-value of Kendall's tau > 0 (scipy.stats.kendalltau: the exact permutation distribution where
    neither side has ties): how often orderings unrelated to the paper's agree with it as well or better."""
    names = [n for n in paper if n in ours]
    if len(names) < 3 or len({paper[n] for n in names}) < 2 or len({ours[n] for n in names}) < 2:
        return math.nan
    return float(stats.kendalltau([paper[n] for n in names], [ours[n] for n in names], alternative="greater").pvalue)
