"""Tests and their planning: Holm's step-down adjustment over a family of p-values, the sign-flip permutation test
of paired differences, the exact permutation test of a trend over a swept setting, and the power of a comparison
over seeds (the smallest effect it detects, the seeds it needs for a given effect)."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from bench.report.stats import Spread

SIGNIFICANT, UNADJUSTED = "*", "(*)"  # the marks of a comparison in a table: after Holm, unadjusted only
TESTS = ("interval", "permutation")  # what gives a comparison's p-value: its interval, or sign flips of its seeds
POWER = 0.8  # the power at which the detectable effect and the seeds needed are stated
MAX_SEEDS = 1000  # seeds needed beyond this are reported as more than it
FAR = 20  # standard errors: the effect detected with POWER lies below this from 1 degree of freedom up
EXACT_FLIPS = 16  # up to 2 ** 16 sign patterns are enumerated; more seeds draw 9,999 of them (fixed seed)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest of m times (m - i + 1), made non-decreasing, at most 1.
    NaN (no test) stays NaN and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return out


def mark(p: float, p_holm: float, alpha: float) -> str:
    """The mark of a comparison: SIGNIFICANT after Holm's adjustment, UNADJUSTED when only before it."""
    return f" {SIGNIFICANT}" if p_holm < alpha else f" {UNADJUSTED}" if p < alpha else ""


def marks_note(alpha: float, test: str, null: str) -> str:
    """What the marks of a table of comparisons mean: its test, its family and alpha."""
    how = ("the sign-flip permutation test of the seeds' statistics (a seed's users flipped together)"
           if test == "permutation" else "the interval's p-value")
    return (f"{SIGNIFICANT}: p < {alpha:g} after Holm's step-down adjustment over this table's family (every variant "
            f"and metric in it); {UNADJUSTED}: p < {alpha:g} unadjusted only; p of {null} by {how}.")


def sign_flip(theta: Sequence[float], null: float = 0.0) -> float:
    """Two-sided p-value of the sign-flip permutation test that the seeds' statistics are symmetric about `null`
    (scipy.stats.permutation_test): each seed's paired differences change sign together, as its users share its
    training runs. Exact over the 2 ** seeds patterns up to EXACT_FLIPS seeds; NaN with fewer than two seeds."""
    x = np.asarray(theta, dtype=float) - null
    if len(x) < 2:
        return math.nan
    if not x.any():
        return 1.0
    found = stats.permutation_test((x,), np.mean, permutation_type="samples", alternative="two-sided",
                                   n_resamples=np.inf if len(x) <= EXACT_FLIPS else 9_999, rng=0)
    return float(found.pvalue)


def smallest_flip_p(seeds: int) -> float:
    """The smallest two-sided p-value a sign-flip test of `seeds` seeds can give: 2 / 2 ** seeds."""
    return min(1.0, 2.0 / 2 ** seeds)


def trend(blocks: np.ndarray) -> tuple[float, float]:
    """(mean over blocks of Spearman's rho between column order and values, two-sided exact p-value) for a
    (blocks, k) array whose columns are a swept setting in increasing order and whose rows are seeds (each row the
    seed's mean of each setting). The p-value is that of the exact permutation test of the rows' orderings, which
    are equally likely with no trend: Page's L test (scipy.stats.page_trend_test) from two rows, Spearman's rho over
    the k! orderings (scipy.stats.permutation_test) for one."""
    blocks = np.asarray(blocks, dtype=float)
    n, k = blocks.shape
    order = np.arange(k, dtype=float)
    with warnings.catch_warnings():  # a seed whose settings all score alike has no order: rho 0 there
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = float(np.mean(np.nan_to_num([stats.spearmanr(order, row).statistic for row in blocks])))
    if n == 1 and np.ptp(blocks) == 0:
        return 0.0, 1.0
    if n == 1:
        found = stats.permutation_test((blocks[0],), lambda y: stats.spearmanr(order, y).statistic,
                                       permutation_type="pairings", alternative="two-sided", n_resamples=np.inf)
        return rho, float(found.pvalue)
    up = stats.page_trend_test(blocks, predicted_ranks=order + 1, method="exact").pvalue
    down = stats.page_trend_test(blocks, predicted_ranks=k - order, method="exact").pvalue
    return rho, float(min(1.0, 2 * min(up, down)))


def smallest_trend_p(blocks: int, k: int) -> float:
    """The smallest two-sided p-value of trend(): every block in the same strict order, 2 / k! ** blocks."""
    return min(1.0, 2.0 / math.factorial(k) ** blocks)


def power(effect: float, se: float, df: float, alpha: float) -> float:
    """The probability that a two-sided Student t test at `alpha` rejects when the true effect is `effect` and the
    estimate has standard error `se` on `df` degrees of freedom (noncentral t)."""
    if se == 0:
        return 1.0 if effect else alpha
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(effect) / se
    # scipy's noncentral t gives NaN far out in its tails: there the right side is 1 and the wrong side 0
    right = np.nan_to_num(stats.nct.sf(critical, df, shift), nan=float(shift > critical))
    return float(right + np.nan_to_num(stats.nct.cdf(-critical, df, shift)))


def detectable(spread: Spread, alpha: float, seeds: int | None = None) -> float:
    """The smallest effect that `seeds` seeds (the measured ones by default) detect with POWER."""
    se, df = spread.se(seeds), spread.df(seeds)
    if se == 0:
        return 0.0
    return float(optimize.brentq(lambda d: power(d, se, df, alpha) - POWER, 0.0, FAR * se))


def seeds_needed(effect: float, spread: Spread, alpha: float) -> int | None:
    """The fewest seeds (2 or more, the same users) whose test detects `effect` with POWER; None beyond MAX_SEEDS,
    or where the users' variance alone keeps the power below it."""
    for seeds in range(2, MAX_SEEDS + 1):
        if power(effect, spread.se(seeds), spread.df(seeds), alpha) >= POWER:
            return seeds
    return None

