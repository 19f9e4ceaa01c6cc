"""The seed x user scores every estimate of the report reads (bench.report.stats), and the report's columns made
from them: per (variant, metric) the estimate and the IQM, paired comparisons, P(A > B), performance profiles.

A record's `by_user[metric][user]` holds each held-out user's score of a metric (bench.run.evaluation). A (variant,
metric) is read at the user level where every seed it is compared on has that breakdown, and at the seed level
(the seed's overall metric, one score per seed) otherwise; the report says which fell back. Whether every seed tests
the same users (crossed: a dataset's fixed held-out users) or its own (synthetic data drawn per seed) comes from
the records' data seeds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from bench.report import significance, stats

SEED_LEVEL = ""  # the user key of a seed's overall score, where a record has no per-user breakdown
UNITS = {True: "seeds x users", False: "seeds"}
THRESHOLDS = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # the points of a performance profile


def users_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (variant, seed, metric, user) of the done records' per-user breakdowns."""
    rows = [{"variant": r["variant"], "seed": r["seed"], "metric": m, "user": str(u), "value": v}
            for r in records if r["status"] == "done" for m, by in (r.get("by_user") or {}).items()
            for u, v in by.items() if v is not None]
    return pd.DataFrame(rows, columns=["variant", "seed", "metric", "user", "value"])


def cohort(record: dict) -> str:
    """Which users a run tested: synthetic data names its draw of users by its data seed; other data has one fixed
    set of held-out users."""
    synth = record["config"]["data"].get("synth") if record["dataset"] == "synthetic" else None
    return f"synthetic seed {synth['seed']}" if synth else "fixed"


class Scores:
    """Per (variant, metric): the overall score of each seed, and each seed's per-user scores where recorded."""

    def __init__(self, values: pd.DataFrame, users: pd.DataFrame, cohorts: dict[tuple[str, int], str] | None = None):
        self.overall = {key: dict(zip(g["seed"], g["value"])) for key, g in values.groupby(["variant", "metric"])}
        self.users = {key: dict(zip(g["user"], g["value"]))
                      for key, g in users.groupby(["variant", "metric", "seed"])}
        self.cohorts = cohorts or {}  # (variant, seed) -> the users it tested (cohort()); crossed where absent

    @classmethod
    def of(cls, records: list[dict], values: pd.DataFrame) -> Scores:
        return cls(values, users_frame(records), {(r["variant"], r["seed"]): cohort(r) for r in records})

    def seeds(self, variant: str, metric: str) -> list[int]:
        return sorted(self.overall.get((variant, metric), {}))

    def strata(self, *columns: tuple[str, str]) -> tuple[stats.Strata, bool, list[int]]:
        """(the scores of the columns (variant, metric) on the seeds all have and, within each seed, on the users
        all have; at the user level?; the seeds). Where every seed tested the same users, only the users every seed
        has are kept, in one order, and the strata are crossed."""
        seeds = sorted(set.intersection(*(set(self.seeds(*c)) for c in columns))) if columns else []
        by_user = bool(seeds) and all((*c, s) in self.users for c in columns for s in seeds)
        found = {}
        for s in seeds:
            scores = [self.users[(*c, s)] if by_user else {SEED_LEVEL: self.overall[c][s]} for c in columns]
            shared = set.intersection(*(set(x) for x in scores))
            if shared:
                found[s] = (scores, shared)
        groups = {self.cohorts.get((v, s), "fixed") for v, _ in columns for s in found}
        crossed = by_user and len(groups) == 1
        common = set.intersection(*(shared for _, shared in found.values())) if crossed and found else set()
        if crossed and len(common) < 2:
            crossed = False  # too few users every seed has: each seed's own users, as if drawn per seed
        arrays = [np.array([[x[u] for x in scores] for u in sorted(common if crossed else shared)])
                  for scores, shared in found.values()]
        return stats.Strata.of(arrays, crossed), by_user, list(found)


def compare(scores: Scores, columns: tuple[tuple[str, str], ...], statistic, method: str, level: float,
            null: float, test: str) -> tuple[stats.Interval, bool, list[int]]:
    """The estimate of `statistic` over the columns' strata, its interval, and its p-value of `null` by `test`
    (significance.TESTS: the interval's, or sign flips of the seeds' statistics)."""
    strata, by_user, seeds = scores.strata(*columns)
    ci = stats.estimate(strata, statistic, method, level, null=null)
    if test == "permutation" and seeds:
        ci = stats.Interval(ci.mean, ci.low, ci.high, ci.n, significance.sign_flip(statistic(strata.values), null))
    return ci, by_user, seeds


def estimate_columns(scores: Scores, summary: pd.DataFrame, method: str, level: float) -> pd.DataFrame:
    """The summary (one row per variant and metric) with the estimate and its interval (`mean`, `ci_low`,
    `ci_high`, `n`), the IQM and its interval (`iqm`, `iqm_low`, `iqm_high`), the unit they are over (`unit`) and
    whether every seed tested the same users (`same_users`)."""
    rows = []
    for v, m in zip(summary["variant"], summary["metric"]):
        strata, by_user, _ = scores.strata((v, m))
        mean, middle = (stats.estimate(strata, f, method, level) for f in (stats.mean_of, stats.iqm_of))
        rows.append({"n": mean.n, "mean": mean.mean, "ci_low": mean.low, "ci_high": mean.high, "iqm": middle.mean,
                     "iqm_low": middle.low, "iqm_high": middle.high, "unit": UNITS[by_user] if mean.n else "",
                     "same_users": strata.crossed})
    return pd.concat([summary.reset_index(drop=True), pd.DataFrame(rows, columns=[
        "n", "mean", "ci_low", "ci_high", "iqm", "iqm_low", "iqm_high", "unit", "same_users"])], axis=1)


def describe(summary: pd.DataFrame, method: str, level: float) -> str:
    """The caption of the intervals of the summary's rows (stats.describe), with the users' term where any row has
    the same users on every seed."""
    return stats.describe(method, level, bool(summary["same_users"].any()))


def interval_text(summary: pd.DataFrame, method: str, level: float) -> str:
    """What the summary's estimates and intervals are (the tables' and figures' caption)."""
    return f"{describe(summary, method, level)}; {stats.ESTIMATE}"


def improvement_table(scores: Scores, variants: list[str], metrics: list[str], method: str, level: float,
                      test: str) -> pd.DataFrame:
    """P(A > B) for every ordered pair of variants and every metric both have, with its interval and the p-value of
    0.5 (in the order of `variants`: each pair, then its reverse)."""
    rows = []
    for m in metrics:
        for a, b in itertools.combinations(variants, 2):
            strata, by_user, seeds = scores.strata((a, m), (b, m))
            if not seeds:
                continue
            ci, _, _ = compare(scores, ((a, m), (b, m)), stats.improvement_of, method, level, 0.5, test)
            common = {"metric": m, "seeds": " ".join(map(str, seeds)),
                      "strata": int((~np.isnan(strata.values[..., 0])).sum()), "unit": UNITS[by_user], "p": ci.p}
            # P(B > A) = 1 - P(A > B) on every seed: the same interval, mirrored, and the same test
            rows += [common | {"a": a, "b": b, "p_a_above_b": ci.mean, "ci_low": ci.low, "ci_high": ci.high},
                     common | {"a": b, "b": a, "p_a_above_b": 1 - ci.mean, "ci_low": 1 - ci.high,
                               "ci_high": 1 - ci.low}]
    return pd.DataFrame(rows, columns=["metric", "a", "b", "p_a_above_b", "ci_low", "ci_high", "p", "seeds",
                                       "strata", "unit"])


def profiles(scores: Scores, variants: list[str], metrics: list[str], method: str, level: float) -> pd.DataFrame:
    """Performance profiles (Agarwal et al. 2021): per variant and metric with per-user scores, the fraction of
    held-out users scoring above each threshold (THRESHOLDS), averaged over seeds, with its interval."""
    rows = []
    for v, m in itertools.product(variants, metrics):
        strata, by_user, _ = scores.strata((v, m))
        if not by_user:
            continue
        for threshold in THRESHOLDS:
            ci = stats.estimate(strata, stats.above_of(threshold), method, level)
            rows.append({"variant": v, "metric": m, "threshold": threshold, "fraction": ci.mean,
                         "low": np.clip(ci.low, 0, 1), "high": np.clip(ci.high, 0, 1), "n": ci.n})
    return pd.DataFrame(rows, columns=["variant", "metric", "threshold", "fraction", "low", "high", "n"])


def iqm_note(summary: pd.DataFrame, method: str, level: float) -> str:
    return (f"IQM: the interquartile mean (the middle half) of each seed's held-out users' scores, averaged over the "
            f"seeds, with its {describe(summary, method, level)}.")


def fallback_notes(summary: pd.DataFrame) -> list[str]:
    """Which variants' statistics fell back to one score per seed (records without a per-user breakdown)."""
    seed_level = summary[summary["unit"] == UNITS[False]]
    if seed_level.empty:
        return []
    if (summary.loc[summary["unit"] != "", "unit"] == UNITS[False]).all():
        return ["no record has a per-user breakdown: every estimate is over the seeds' overall scores (IQM and "
                "P(A > B) of one score per seed)."]
    which = "; ".join(f"{v} ({', '.join(g['metric'])})" for v, g in seed_level.groupby("variant", sort=False))
    return [f"seeds only (no per-user breakdown in their records; their estimates, and any comparison with them, "
            f"are over one score per seed): {which}."]
