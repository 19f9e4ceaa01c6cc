"""The seed x user scores the report's robust statistics read (bench.report.stats: stratified bootstrap, IQM, P(A > B)).

A record's `by_user[metric][user]` holds each held-out user's score of a metric (bench.run.evaluation). A (variant,
metric) is read at the user level where every seed it is compared on has that breakdown, and at the seed level
(the seed's overall metric, one score per seed) otherwise; the report says which fell back.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from bench.report import stats

SEED_LEVEL = ""  # the user key of a seed's overall score, where a record has no per-user breakdown
UNITS = {True: "seeds x users", False: "seeds"}


def users_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (variant, seed, metric, user) of the done records' per-user breakdowns."""
    rows = [{"variant": r["variant"], "seed": r["seed"], "metric": m, "user": str(u), "value": v}
            for r in records if r["status"] == "done" for m, by in (r.get("by_user") or {}).items()
            for u, v in by.items() if v is not None]
    return pd.DataFrame(rows, columns=["variant", "seed", "metric", "user", "value"])


class Scores:
    """Per (variant, metric): the overall score of each seed, and each seed's per-user scores where recorded."""

    def __init__(self, values: pd.DataFrame, users: pd.DataFrame):
        self.overall = {key: dict(zip(g["seed"], g["value"])) for key, g in values.groupby(["variant", "metric"])}
        self.users = {key: dict(zip(g["user"], g["value"]))
                      for key, g in users.groupby(["variant", "metric", "seed"])}

    def seeds(self, variant: str, metric: str) -> list[int]:
        return sorted(self.overall.get((variant, metric), {}))

    def strata(self, *columns: tuple[str, str]) -> tuple[list[np.ndarray], bool, list[int]]:
        """(one (users, len(columns)) array per seed, at the user level?, the seeds): the columns (variant,
        metric) on the seeds all have, and within each seed on the users all have, in sorted order."""
        seeds = sorted(set.intersection(*(set(self.seeds(*c)) for c in columns))) if columns else []
        by_user = bool(seeds) and all((*c, s) in self.users for c in columns for s in seeds)
        strata = []
        for s in seeds:
            scores = [self.users[(*c, s)] if by_user else {SEED_LEVEL: self.overall[c][s]} for c in columns]
            shared = sorted(set.intersection(*(set(x) for x in scores)))
            if shared:
                strata.append(np.array([[x[u] for x in scores] for u in shared]))
        return strata, by_user, seeds


def robust_columns(scores: Scores, summary: pd.DataFrame, method: str, level: float) -> pd.DataFrame:
    """The summary with the IQM of each (variant, metric) and its stratified interval (`iqm`, `iqm_low`,
    `iqm_high`), the unit of those (`unit`), and, with --ci bootstrap, its mean and interval over the same
    seed x user scores."""
    out = summary.copy()
    rows = []
    for v, m in zip(out["variant"], out["metric"]):
        strata, by_user, _ = scores.strata((v, m))
        row = {"unit": UNITS[by_user] if strata else ""}
        ci = stats.iqm(strata, level)
        row |= {"iqm": ci.mean, "iqm_low": ci.low, "iqm_high": ci.high}
        if method == "bootstrap" and by_user:
            mean = stats.bootstrap(strata, stats.mean_of, level)
            row |= {"mean": mean.mean, "ci_low": mean.low, "ci_high": mean.high}
        rows.append(row)
    extra = pd.DataFrame(rows, index=out.index)
    for column in extra.columns:  # a (variant, metric) without per-user scores keeps its seeds-only mean and CI
        out[column] = extra[column].where(extra[column].notna(), out[column]) if column in out else extra[column]
    return out


def interval_text(summary: pd.DataFrame, method: str, level: float) -> str:
    """What the summary's estimates and intervals are (the tables' and figures' caption)."""
    if method == "bootstrap" and (summary["unit"] == UNITS[True]).any():
        mixed = " (over the seeds alone where records have no per-user scores)" if (
            summary["unit"] == UNITS[False]).any() else ""
        return f"mean of the seed x user scores and its {stats.describe_stratified(level)}{mixed}"
    return stats.describe(method, level)


def paired_stratified(scores: Scores, variant: str, reference: str, metric: str, level: float):
    """variant minus reference on matched (seed, user) strata with its stratified interval, or None where either
    lacks per-user scores on a shared seed (the caller then uses the seeds)."""
    strata, by_user, _ = scores.strata((variant, metric), (reference, metric))
    return stats.bootstrap(strata, stats.difference_of, level) if by_user else None


def improvement_table(scores: Scores, variants: list[str], metrics: list[str], level: float) -> pd.DataFrame:
    """P(A > B) for every ordered pair of variants and every metric both have, with its stratified interval (in
    the order of `variants`: each pair, then its reverse)."""
    rows = []
    for m in metrics:
        for a, b in itertools.combinations(variants, 2):
            strata, by_user, seeds = scores.strata((a, m), (b, m))
            if not strata:
                continue
            ci = stats.improvement(strata, level)
            common = {"metric": m, "seeds": " ".join(map(str, seeds)), "strata": sum(len(x) for x in strata),
                      "unit": UNITS[by_user]}
            # P(B > A) = 1 - P(A > B) in every resample: the same interval, mirrored
            rows += [common | {"a": a, "b": b, "p_a_above_b": ci.mean, "ci_low": ci.low, "ci_high": ci.high},
                     common | {"a": b, "b": a, "p_a_above_b": 1 - ci.mean, "ci_low": 1 - ci.high,
                               "ci_high": 1 - ci.low}]
    return pd.DataFrame(rows, columns=["metric", "a", "b", "p_a_above_b", "ci_low", "ci_high", "seeds", "strata",
                                       "unit"])


def iqm_note(level: float) -> str:
    return (f"IQM: interquartile mean (the middle half) of the seed x user scores (each held-out user's score on "
            f"each seed), with its {stats.describe_stratified(level)}.")


def fallback_notes(summary: pd.DataFrame) -> list[str]:
    """Which variants' statistics fell back to one score per seed (records without a per-user breakdown)."""
    seed_level = summary[summary["unit"] == UNITS[False]]
    if seed_level.empty:
        return []
    if (summary.loc[summary["unit"] != "", "unit"] == UNITS[False]).all():
        return ["no record has a per-user breakdown: IQM, P(A > B) and the bootstrap resample the seeds only (one "
                "score per seed)."]
    which = "; ".join(f"{v} ({', '.join(g['metric'])})" for v, g in seed_level.groupby("variant", sort=False))
    return [f"seeds only (no per-user breakdown in their records; IQM, P(A > B) and the bootstrap then resample one "
            f"score per seed, and so does any comparison with them): {which}."]
