"""Means over seeds with confidence intervals, paired differences, and agreement of two rankings."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from scipy import stats

CI_METHODS = ("t", "bootstrap")
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # fixed, so that a report is the same every time it is made


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
    else:
        low, high = stats.bootstrap((x,), np.mean, confidence_level=level, method="percentile",
                                    n_resamples=BOOTSTRAP_RESAMPLES,
                                    rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
    return Interval(mean, float(low), float(high), len(x))


def errorbar(method: str, level: float):
    """`interval` as a seaborn errorbar function: values -> (low, high)."""
    def bounds(values) -> tuple[float, float]:
        ci = interval(values, method, level)
        return ci.low, ci.high
    return bounds


def describe(method: str, level: float) -> str:
    pct = f"{level * 100:g} %"
    if method == "t":
        how = "Student t (mean ± t quantile with n-1 degrees of freedom × standard error)"
    else:
        how = (f"percentile bootstrap of the mean (scipy.stats.bootstrap, {BOOTSTRAP_RESAMPLES} resamples, "
               f"fixed seed {BOOTSTRAP_SEED}; with few seeds it is narrower than it should be)")
    return f"{pct} confidence interval over seeds: {how}"


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
