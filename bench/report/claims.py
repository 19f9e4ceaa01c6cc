"""The CPEP paper's claims, each checked on a suite's records: one row per claim (and metric) with the paper's
value, ours, its interval, its p-value, a verdict by one rule (rule()) before and after Holm's adjustment over the
report's claims, whether the paper's size lies in our interval, and what the run can detect. Rows whose variants the
records lack are left out.

Comparisons are matched on the seeds and, within them, the held-out users that all the claim's variants share (the
seeds alone where a record has no per-user breakdown); their estimates and intervals are bench.report.stats'.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report import reference, significance, stats
from bench.report.frames import FRACTION_GROUP, PATCH_GROUP, REFERENCE_VARIANT, metric_name, sweep_rows
from bench.report.scores import UNITS, Scores

VERDICTS = ("reproduced", "contradicted", "inconclusive")
DIVERGED = re.compile(r"diverg|not finite|\bnan\b|\binf\b", re.IGNORECASE)
ABLATION_METRICS = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")
NO_SIZE = "no published size for this data"
COLUMNS = ["claim", "paper", "measured", "interval", "p", "verdict", "p_holm", "verdict_holm", "size", "detectable",
           "seeds_needed", "reading", "kind", "estimate", "low", "high", "p_value", "p_value_holm", "paper_size",
           "seeds", "unit", "same_users"]
SHOWN = {"claim": "claim", "paper": "paper", "measured": "measured", "interval": "interval", "p": "p",
         "verdict": "verdict", "verdict_holm": "Holm", "size": "size", "detectable": "detectable (80 %)",
         "seeds_needed": "seeds needed", "reading": "inconclusive: why"}


@dataclass(frozen=True)
class Settings:
    method: str = "t"  # the interval (bench.report.stats.CI_METHODS)
    level: float = 0.95
    alpha: float = 0.05  # the level of the tests, before and after Holm's adjustment
    test: str = "interval"  # what gives a comparison's p-value (bench.report.significance.TESTS)


@dataclass(frozen=True)
class Claim:
    text: str
    kind: str  # relative (first over second, minus 1), difference (first minus second), trend, diverges
    columns: tuple[tuple[str, str], ...] = ()  # (variant, metric)
    side: int = 1  # the sign the paper reports
    variant: str = ""  # diverges: the variant
    setting: str = ""  # trend: the swept setting (SWEEPS), ranked against the metric
    paper: str = ""  # trend: the paper column (default: the direction the paper reports)


def claims() -> list[Claim]:
    rows = [Claim(f"CPEP above the emg2pose baseline, {metric_name(m)} ({pct})", "relative",
                  (("cpep", m), ("emg2pose", m))) for m, pct in (("lp_id", "+21 %"), ("lp_unseen", "+72 %"))]
    rows += [Claim(f"CPEP above EMG-MAE, {metric_name(m)}", "difference", (("cpep", m), ("emg_mae", m)))
             for m in ("lp_id", "lp_unseen")]
    for variant, text in (("frozen_emg", "EMG encoder frozen far below CPEP"),
                          ("random_init", "EMG encoder random init below CPEP")):
        rows += [Claim(f"{text}, {metric_name(m)}", "difference", ((variant, m), ("cpep", m)), -1)
                 for m in ABLATION_METRICS]
    rows += [Claim(f"[CLS] >= AvgPool, {metric_name(m)}", "difference", (("cpep", m), ("avgpool", m)))
             for m in ABLATION_METRICS]
    rows += [Claim(f"longer EMG patches worse, {metric_name(m)}", "trend", ((REFERENCE_VARIANT, m),), -1,
                   setting="patch") for m in ABLATION_METRICS]
    rows.append(Claim("joint training (pose encoder not frozen) diverges", "diverges", variant="joint"))
    rows.append(Claim("CPEP's ZS unseen above emg2pose's LP unseen", "difference",
                      (("cpep", "zs_unseen"), ("emg2pose", "lp_unseen"))))
    # EMBridge's data-efficiency question: no number of it is on record, so the paper column states the direction
    rows += [Claim(f"CPEP better with more paired data, {metric_name(m)}", "trend", ((REFERENCE_VARIANT, m),),
                   setting="fraction", paper="expected: rho > 0 (EMBridge)") for m in ABLATION_METRICS]
    return rows


def settings_of(report) -> Settings:
    """The settings a report was made with (a bench.report.frames.Report)."""
    return Settings(report.method, report.level, report.alpha, report.test)


def rule(settings: Settings) -> str:
    """The verdict rule, as printed under the claims table."""
    pct = f"{settings.level * 100:g} %"
    how = ("the sign-flip permutation test of the seeds' paired differences (a seed's users flipped together)"
           if settings.test == "permutation" else f"the {pct} interval's: it excludes zero exactly when p < "
                                                   f"{1 - settings.level:g}")
    return (f"p: two-sided p-value of no difference, {how}; for a trend over a swept setting, the exact permutation "
            f"test of each seed's order of the settings (Page's L; Spearman's rho over the k! orders with one "
            f"seed), whose statistic, the mean over seeds of Spearman's rho, is 'measured'. Reproduced: p < "
            f"{settings.alpha:g} with the estimate on the paper's side; contradicted: p < {settings.alpha:g} with "
            f"the estimate on the other side; inconclusive: otherwise. Holm: the same rule on Holm's step-down "
            f"adjusted p over the family of this report's claims that have a p-value, which keeps at {settings.alpha:g} "
            f"or less the chance that any claim whose true difference is zero is decided. Size: where the paper states a size, whether it lies in "
            f"our interval (consistent), above it on the paper's side (smaller: our effect is smaller), or below it "
            f"(larger). Joint training: a count, not a test (outside the Holm family): reproduced when every run "
            f"diverged (a loss, embedding or score that is not finite), contradicted when none did and one "
            f"finished, inconclusive otherwise.")


def verdict(estimate: float, p: float, side: int, alpha: float) -> str:
    """The rule for an estimate whose paper side has the sign of `side`, with p-value `p`."""
    if math.isnan(p) or p >= alpha or estimate == 0 or math.isnan(estimate):
        return "inconclusive"
    return "reproduced" if side * estimate > 0 else "contradicted"


def size_verdict(paper_size: float, low: float, high: float, side: int) -> str:
    """Whether the paper's size lies in our interval, or our effect is smaller or larger on the paper's side."""
    if math.isnan(paper_size) or math.isnan(low):
        return ""
    near, far = sorted((side * low, side * high))  # the interval in the paper's direction
    if far < side * paper_size:
        return "smaller"
    return "larger" if near > side * paper_size else "consistent"


def table(scores: Scores, records: list[dict], swept: dict[str, dict[str, float]], settings: Settings,
          published: pd.DataFrame) -> pd.DataFrame:
    """The claims the records can check, each for the direction the paper reports; the paper's values beside them
    only where `published` (bench.report.reference.load: the paper's numbers on this data) has them. `swept`: per
    swept setting, its value for CPEP and each variant of the setting's group (`sweeps`)."""
    paper = reference.primary(published)
    rows = []
    for claim in claims():
        if claim.kind == "diverges":
            row = _diverges(claim, records)
        elif claim.kind == "trend":
            row = _trend(claim, scores, swept[claim.setting], settings)
        else:
            row = _compare(claim, scores, paper, settings, published.empty)
        if row is not None:
            rows.append({"claim": claim.text, "kind": claim.kind, "side": claim.side} | row)
    df = pd.DataFrame(rows, columns=COLUMNS + ["side"])
    df["p_value_holm"] = significance.holm(df["p_value"])
    df["p_holm"] = df["p_value_holm"].map(_p)
    df["verdict_holm"] = [found if kind == "diverges" else verdict(e, p, s, settings.alpha) for kind, found, e, p, s
                          in zip(df["kind"], df["verdict"], df["estimate"], df["p_value_holm"], df["side"])]
    return df[COLUMNS]


def _p(p: float) -> str:
    return "" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _paper(claim: Claim, paper: pd.DataFrame) -> tuple[str, float]:
    """The paper's value of a comparison, as text and as a number (NaN where the paper has none here); '~' where a
    number was read off a figure (results/emg2pose.csv)."""
    if not all(c in paper.index for c in claim.columns):
        return "", math.nan
    a, b = (paper.loc[c, "value"] for c in claim.columns)
    if claim.kind == "relative":
        return f"{(a / b - 1) * 100:+.0f} %", a / b - 1
    approximate = any(paper.loc[c, "approximate"] for c in claim.columns)
    return f"{'~' if approximate else ''}{a - b:+.3f}", a - b


def _shown(x: float, relative: bool, signed: bool = True) -> str:
    if math.isnan(x):
        return ""
    sign = "+" if signed else ""
    return f"{x * 100:{sign}.1f} %" if relative else f"{x:{sign}.3f}"


def _compare(claim: Claim, scores: Scores, paper: pd.DataFrame, settings: Settings, unpublished: bool) -> dict | None:
    strata, by_user, seeds = scores.strata(*claim.columns)
    if not seeds:
        return None
    relative = claim.kind == "relative"
    statistic = stats.relative_of if relative else stats.difference_of
    ci = stats.estimate(strata, statistic, settings.method, settings.level, null=0.0)
    p = ci.p
    if settings.test == "permutation":  # A and B exchanged on a seed: its differences change sign
        p = significance.sign_flip(stats.difference_of(strata.values))
    text, size = _paper(claim, paper)
    found = {"paper": text, "paper_size": size, "measured": _shown(ci.mean, relative),
             "interval": "" if not ci.has_ci else f"[{_shown(ci.low, relative)}, {_shown(ci.high, relative)}]",
             "p_value": p, "p": _p(p), "verdict": verdict(ci.mean, p, claim.side, settings.alpha),
             "size": NO_SIZE if unpublished else size_verdict(size, ci.low, ci.high, claim.side),
             "estimate": ci.mean, "low": ci.low, "high": ci.high, "seeds": " ".join(map(str, seeds)),
             "unit": UNITS[by_user], "same_users": strata.crossed}
    return found | _power(claim, strata, statistic, ci, size, found["verdict"], settings)


def _power(claim: Claim, strata: stats.Strata, statistic, ci: stats.Interval, size: float, found: str,
           settings: Settings) -> dict:
    """What the run can detect (80 % power, Student t over the seeds' statistics, unadjusted alpha), the seeds the
    paper's size needs, and, where the verdict is inconclusive, which it is: an effect of that size absent (our
    interval excludes it) or a run too small to tell."""
    if ci.n < 2:
        return {"detectable": "", "seeds_needed": "", "reading": "run too small: one seed, no interval"}
    relative = claim.kind == "relative"
    spread = stats.spread(strata, statistic)
    mde = significance.detectable(spread, settings.alpha)
    needed = "" if math.isnan(size) else significance.seeds_needed(size, spread, settings.alpha)
    out = {"detectable": _shown(mde, relative, signed=False),
           "seeds_needed": "" if needed == "" else f"> {significance.MAX_SEEDS}" if needed is None else str(needed)}
    if found != "inconclusive":
        return out | {"reading": ""}
    if settings.test == "permutation" and significance.smallest_flip_p(ci.n) >= settings.alpha:
        return out | {"reading": f"run too small: a sign-flip test of {ci.n} seeds cannot reach p < "
                                 f"{significance.smallest_flip_p(ci.n):.3g}"}
    target, whose = (abs(size), "the paper's size") if not math.isnan(size) else (mde, "the detectable size")
    reach = max(claim.side * ci.low, claim.side * ci.high) if ci.has_ci else math.inf
    if reach < target:
        return out | {"reading": f"no effect of {whose} ({_shown(target, relative, signed=False)}): the interval "
                                 f"excludes it"}
    more = f": {out['seeds_needed']} seeds for the paper's size" if out["seeds_needed"] else ""
    return out | {"reading": f"run too small to tell{more}"}


def _trend(claim: Claim, scores: Scores, setting: dict[str, float], settings: Settings) -> dict | None:
    metric = claim.columns[0][1]
    present = sorted((x, v) for v, x in setting.items() if scores.seeds(v, metric))
    if len({p for p, _ in present}) < 3:
        return None
    strata, by_user, seeds = scores.strata(*((v, metric) for _, v in present))
    if not seeds:
        return None
    blocks = np.nanmean(strata.values, axis=1)  # (seeds, settings): each seed's mean of each setting
    rho, p = significance.trend(blocks)
    over = ", ".join(f"{x:g}" for x, _ in present)
    found = verdict(rho, p, claim.side, settings.alpha)
    floor = significance.smallest_trend_p(len(seeds), len(present))
    reading = ""
    if found == "inconclusive":
        reading = (f"run too small: {len(seeds)} seed{'s' * (len(seeds) > 1)} cannot reach p < {floor:.3g}"
                   if floor >= settings.alpha else f"no consistent order over the seeds (the test could reach "
                                                  f"p = {floor:.2g})")
    return {"claim": claim.text.replace(", ", f" (Spearman rho over {SWEEPS[claim.setting][1]} {over}), ", 1),
            "paper": claim.paper or f"rho {'<' if claim.side < 0 else '>'} 0", "paper_size": math.nan,
            "measured": f"{rho:+.2f}", "interval": "exact test", "p_value": p, "p": _p(p), "verdict": found,
            "size": "direction only", "estimate": rho, "low": math.nan, "high": math.nan,
            "seeds": " ".join(map(str, seeds)), "unit": UNITS[by_user], "same_users": strata.crossed,
            "detectable": "", "seeds_needed": "", "reading": reading}


def _diverges(claim: Claim, records: list[dict]) -> dict | None:
    runs = [r for r in records if r["variant"] == claim.variant and r["status"] in ("done", "failed")]
    if not runs:
        return None
    diverged = sum(r["status"] == "failed" and bool(DIVERGED.search(r.get("error") or "")) for r in runs)
    finished = sum(r["status"] == "done" for r in runs)
    if diverged == len(runs):
        found = "reproduced"
    elif diverged == 0 and finished:
        found = "contradicted"
    else:
        found = "inconclusive"
    measured = f"{diverged} of {len(runs)} runs diverged" + (f", {finished} finished" if finished else "")
    return {"paper": "diverges", "measured": measured, "interval": "", "p_value": math.nan, "p": "",
            "verdict": found, "size": "", "estimate": diverged, "low": math.nan, "high": math.nan,
            "paper_size": math.nan, "detectable": "", "seeds_needed": "", "reading": "", "same_users": False,
            "seeds": " ".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"])), "unit": "runs"}


SWEEPS = {"patch": (PATCH_GROUP, "EMG patch"), "fraction": (FRACTION_GROUP, "data fraction")}  # column: group, name


def sweeps(values: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per swept setting (a column of the values frame): its value for CPEP and each variant of its group (its first
    seed's: a setting that differs between seeds is reported by the report's configuration notes)."""
    found = {}
    for column, (group, _) in SWEEPS.items():
        sel = sweep_rows(values, group)
        found[column] = {v: float(x) for v, x in sel.groupby("variant")[column].first().items()}
    return found


def notes(claims_table: pd.DataFrame, settings: Settings) -> list[str]:
    """How the intervals are computed, the verdict rule, the family, and what the marks in the cells mean."""
    family = int(claims_table["p_value"].notna().sum())
    same = bool(claims_table["same_users"].any())
    found = [f"Intervals: {stats.describe(settings.method, settings.level, same)}; {stats.ESTIMATE}; matched on the "
             f"seeds and users that every variant of the claim has (the seeds alone where a record has no per-user "
             f"breakdown).", f"Verdicts: {rule(settings)}",
             f"Family: the {family} claims of this table with a p-value, at alpha = {settings.alpha:g}.",
             f"detectable: the smallest effect that these seeds detect with 80 % power (two-sided Student t at alpha "
             f"= {settings.alpha:g}, unadjusted, from the seed-to-seed variance of the claim's statistic and, where "
             f"every seed tests the same users, the users' variance); seeds needed: the seeds that detect the "
             f"paper's size with 80 % power, the same users; inconclusive: why: whether the interval excludes "
             f"an effect of the paper's size (or, without one, of the detectable size), or the run is too small."]
    if claims_table["paper"].str.startswith("~").any():
        found.append("paper: ~ marks a value computed from a number read off a figure by a third party "
                     "(results/emg2pose.csv).")
    if (claims_table["interval"] == "").any():
        found.append("no interval: one seed only, fewer seeds than the interval serves, or a count of runs.")
    return found


def markdown(claims_table: pd.DataFrame, settings: Settings) -> str:
    parts = ["# The paper's claims", ""]
    if claims_table.empty:
        return "\n".join(parts + ["None: the records hold none of the variants the claims compare."]) + "\n"
    parts += ["| " + " | ".join(SHOWN.values()) + " |", "|" + " --- |" * len(SHOWN)]
    parts += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in SHOWN) + " |"
              for _, r in claims_table.iterrows()]
    return "\n".join(parts + [""] + [f"- {n}" for n in notes(claims_table, settings)]) + "\n"


def print_claims(claims_table: pd.DataFrame, console, settings: Settings) -> None:
    from rich import box
    from rich.table import Column, Table
    from rich.text import Text
    if claims_table.empty:
        return
    # no vertical rules, the interval under the estimate: the columns fit in 80 terminal columns
    table = Table("claim", "measured", Column("p", no_wrap=True), Column("verdict", no_wrap=True),
                  Column("Holm", no_wrap=True), title="the paper's claims", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)
    styles = {"reproduced": "green", "contradicted": "red", "inconclusive": "yellow"}
    for _, r in claims_table.iterrows():
        measured = r["measured"] + (f"\n{r['interval']}" if r["interval"] else "")
        table.add_row(r["claim"], measured, r["p"],
                      *(Text(r[c], style=styles[r[c]]) for c in ("verdict", "verdict_holm")))
    console.print(table)
    console.print(Text("\n".join(notes(claims_table, settings)), style="dim"))
