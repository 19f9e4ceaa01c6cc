"""Means over seeds with confidence intervals, paired differences, agreement of two rankings, and the statistics
over seeds x held-out users that rliable (Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice", NeurIPS 2021) recommends, computed here with numpy:

- the stratified bootstrap (`bootstrap`): each resample draws the seeds with replacement and then, within each
  drawn seed, that seed's held-out users with replacement (each user's score on that seed); the statistic of the
  drawn scores over BOOTSTRAP_RESAMPLES resamples, drawn with the fixed seed BOOTSTRAP_SEED, gives a percentile
  interval. With one score per seed (no per-user scores) it is the ordinary percentile bootstrap over seeds.
- the interquartile mean (`iqm`): the mean of the middle half of the pooled seed x user scores, as
  scipy.stats.trim_mean(x, 0.25) (int(n / 4) scores cut from each end): robust to one outlying user or seed.
- the probability of improvement (`improvement`): P(A > B) = P(X > Y) + 1/2 P(X = Y), the Mann-Whitney form of
  rliable, over matched (seed, user) strata: each stratum holds one score of A and one of B (the same test
  windows), so P(A > B) is the fraction of strata where A scores above B, a tie counting one half.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

CI_METHODS = ("t", "bootstrap")
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so that a report is the same every time it is made
CHUNK_VALUES = 4_000_000  # drawn scores held in memory at once while resampling


@dataclass(frozen=True)
class Interval:
    """Mean of n values and its confidence interval; low and high are NaN when n < 2 (no interval)."""
    mean: float
    low: float
    high: float
    n: int

    @property
    def has_ci(self) -> bool:
        return not math.isnan(self.low)

    @property
    def excludes_zero(self) -> bool:
        return self.has_ci and (self.low > 0 or self.high < 0)


def interval(values: Iterable[float], method: str = "t", level: float = 0.95) -> Interval:
    """Mean and `level` confidence interval of the mean: Student t, or percentile bootstrap."""
    if method not in CI_METHODS:
        raise ValueError(f"unknown CI method {method!r} (choose {' or '.join(CI_METHODS)})")
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, math.nan, math.nan, 1)
    if np.ptp(x) == 0:  # t's scale and BCa are undefined for a constant sample; the interval is the point
        return Interval(mean, mean, mean, len(x))
    if method == "t":
        low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=stats.sem(x))
        return Interval(mean, float(low), float(high), len(x))
    return bootstrap([[[v]] for v in x], mean_of, level)


def describe(method: str, level: float) -> str:
    pct = f"{level * 100:g} %"
    if method == "t":
        how = "Student t (mean ± t quantile with n-1 degrees of freedom × standard error)"
    else:
        how = (f"percentile bootstrap of the mean ({BOOTSTRAP_RESAMPLES:,} resamples, fixed seed {BOOTSTRAP_SEED}; "
               f"with few seeds it is narrower than it should be)")
    return f"{pct} confidence interval over seeds: {how}"


def describe_stratified(level: float) -> str:
    return (f"{level * 100:g} % stratified bootstrap interval: seeds resampled, and within each seed its held-out "
            f"users (percentile, {BOOTSTRAP_RESAMPLES:,} resamples, fixed seed {BOOTSTRAP_SEED})")


def paired(values: Mapping[int, float], reference: Mapping[int, float], method: str = "t",
           level: float = 0.95) -> tuple[Interval, list[int]]:
    """Mean and CI of values[s] - reference[s] over the seeds s both have, and those seeds."""
    seeds = sorted(set(values) & set(reference))
    return interval([values[s] - reference[s] for s in seeds], method, level), seeds


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


# seeds x users (rliable)

Statistic = Callable[[np.ndarray], np.ndarray]  # drawn scores (R, N, k), NaN where none -> one value per resample


def bootstrap(strata: Sequence, statistic: Statistic, level: float = 0.95,
              resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """The statistic of the strata as they are, and its stratified bootstrap percentile interval.

    `strata`: one (users, k) array per seed, row u holding user u's k scores on that seed (k columns: the variants
    or metrics a statistic compares, matched on the same users). n of the result is the number of seeds; fewer
    than two give no interval, since the users of one seed say nothing of the spread between training runs.
    """
    strata = [np.asarray(x, dtype=float) for x in strata]
    if not strata:
        return Interval(math.nan, math.nan, math.nan, 0)
    counts = np.array([len(x) for x in strata])
    k = strata[0].shape[1]
    padded = np.full((len(strata), counts.max(), k), np.nan)
    for i, x in enumerate(strata):
        padded[i, :len(x)] = x
    seeds, width = padded.shape[:2]
    point = float(statistic(padded.reshape(1, seeds * width, k))[0])
    if seeds < 2:
        return Interval(point, math.nan, math.nan, seeds)
    drawn = []
    for picked, users, missing in _draws(tuple(counts), resamples, max(1, CHUNK_VALUES // (seeds * width * k))):
        values = padded[picked[..., None], users]
        values[missing] = np.nan
        drawn.append(statistic(values.reshape(len(picked), seeds * width, k)))
    drawn = np.concatenate(drawn)
    low, high = np.nanpercentile(drawn, [50 * (1 - level), 50 * (1 + level)])
    return Interval(point, float(low), float(high), seeds)


@functools.lru_cache(maxsize=8)
def _draws(counts: tuple[int, ...], resamples: int, chunk: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The resamples' (drawn seeds (r, seeds), drawn users (r, seeds, width), positions beyond a drawn seed's
    users), in chunks of `chunk` resamples: the same for every statistic of strata with these user counts, as the
    seed is fixed, so they are drawn once."""
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


def mean_of(values: np.ndarray) -> np.ndarray:
    """The mean of the first column's scores."""
    return np.nanmean(values[..., 0], axis=1)


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
    """The mean of the first column minus the second, over the strata that hold both."""
    return np.nanmean(values[..., 0] - values[..., 1], axis=1)


def relative_of(values: np.ndarray) -> np.ndarray:
    """The mean of the first column over the mean of the second, minus 1 (a relative improvement)."""
    return np.nanmean(values[..., 0], axis=1) / np.nanmean(values[..., 1], axis=1) - 1


def improvement_of(values: np.ndarray) -> np.ndarray:
    """P(A > B) of the first column (A) over the second (B): [A > B] + 1/2 [A = B], averaged over the strata."""
    a, b = values[..., 0], values[..., 1]
    wins = np.where(np.isnan(a) | np.isnan(b), np.nan, (a > b) + 0.5 * (a == b))
    return np.nanmean(wins, axis=1)


def spearman_of(x: Sequence[float]) -> Statistic:
    """Spearman's rho between x (one value per column) and the columns' means (ties ranked by their average)."""
    rx = stats.rankdata(x)

    def rho(values: np.ndarray) -> np.ndarray:
        ry = stats.rankdata(np.nanmean(values, axis=1), axis=1)
        dy, dx = ry - ry.mean(1, keepdims=True), rx - rx.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            return (dy @ dx) / np.sqrt((dy ** 2).sum(1) * (dx ** 2).sum())
    return rho


def iqm(strata: Sequence, level: float = 0.95) -> Interval:
    """The interquartile mean of the seed x user scores (one column) and its stratified bootstrap interval."""
    return bootstrap(strata, iqm_of, level)


def improvement(strata: Sequence, level: float = 0.95) -> Interval:
    """P(A > B) over matched (seed, user) strata of (A, B) scores, and its stratified bootstrap interval."""
    return bootstrap(strata, improvement_of, level)
