"""The CPEP paper's claims, each checked on a suite's records: one row per claim (and metric), with the paper's
value, ours, its interval and a verdict by one rule (RULE). Rows whose variants the records lack are left out.

Every interval is the stratified bootstrap of bench.report.stats over the seeds and, within them, the held-out users that
all the claim's variants share (the seeds alone where a record has no per-user breakdown).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from bench.report import reference, stats
from bench.report.frames import FRACTION_GROUP, PATCH_GROUP, REFERENCE_VARIANT, metric_name, sweep_rows
from bench.report.scores import UNITS, Scores

MARGINS = {"relative": 0.05, "difference": 0.02, "spearman": 0.5}
RULE = ("reproduced: the interval excludes zero on the paper's side; not reproduced: it excludes zero on the "
        "other side, or the estimate is on the other side by more than the margin (0.05 for a relative "
        "improvement, 0.02 of balanced accuracy for a difference, 0.5 for Spearman's rho); inconclusive: "
        "otherwise. A verdict is about the direction the paper reports; its size is in 'measured'. Joint training: "
        "reproduced when every run of it failed with a divergence (a loss, embedding or score that is not finite), "
        "not reproduced when none did and one finished, inconclusive otherwise.")
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
DIVERGED = re.compile(r"diverg|not finite|\bnan\b|\binf\b", re.IGNORECASE)
ABLATION_METRICS = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")
COLUMNS = ["claim", "paper", "measured", "interval", "verdict", "kind", "estimate", "low", "high", "seeds", "unit"]


@dataclass(frozen=True)
class Claim:
    text: str
    kind: str  # relative (first over second, minus 1), difference (first minus second), spearman, diverges
    columns: tuple[tuple[str, str], ...] = ()  # (variant, metric)
    side: int = 1  # the sign the paper reports
    variant: str = ""  # diverges: the variant
    setting: str = ""  # spearman: the swept setting (SWEEPS), ranked against the metric
    paper: str = ""  # spearman: the paper column (default: the direction the paper reports)


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
    rows += [Claim(f"longer EMG patches worse, {metric_name(m)}", "spearman", ((REFERENCE_VARIANT, m),), -1,
                   setting="patch") for m in ABLATION_METRICS]
    rows.append(Claim("joint training (pose encoder not frozen) diverges", "diverges", variant="joint"))
    rows.append(Claim("CPEP's ZS unseen above emg2pose's LP unseen", "difference",
                      (("cpep", "zs_unseen"), ("emg2pose", "lp_unseen"))))
    # EMBridge's data-efficiency question: no number of it is on record, so the paper column states the direction
    rows += [Claim(f"CPEP better with more paired data, {metric_name(m)}", "spearman", ((REFERENCE_VARIANT, m),),
                   setting="fraction", paper="expected: rho > 0 (EMBridge)") for m in ABLATION_METRICS]
    return rows


def verdict(estimate: float, low: float, high: float, side: int, margin: float) -> str:
    """RULE, for an estimate whose paper side has the sign of `side`."""
    if not math.isnan(low) and side * low > 0 and side * high > 0:
        return "reproduced"
    if not math.isnan(low) and side * low < 0 and side * high < 0:
        return "not reproduced"
    if not math.isnan(estimate) and side * estimate < -margin:
        return "not reproduced"
    return "inconclusive"


def table(scores: Scores, records: list[dict], swept: dict[str, dict[str, float]], level: float,
          published: pd.DataFrame) -> pd.DataFrame:
    """The claims the records can check, each for the direction the paper reports; the paper's values beside them
    only where `published` (bench.report.reference.load: the paper's numbers on this data) has them. `swept`: per
    swept setting, its value for CPEP and each variant of the setting's group (`sweeps`)."""
    paper = reference.primary(published)
    rows = []
    for claim in claims():
        if claim.kind == "diverges":
            row = _diverges(claim, records)
        elif claim.kind == "spearman":
            row = _spearman(claim, scores, swept[claim.setting], level)
        else:
            row = _compare(claim, scores, paper, level)
        if row is not None:
            rows.append({"claim": claim.text, "kind": claim.kind} | row)  # a row may word its claim itself
    return pd.DataFrame(rows, columns=COLUMNS)


def _paper_value(claim: Claim, paper: pd.DataFrame) -> str:
    """The paper's value of a comparison, from its table (results/emg2pose.csv); '~' where a number was read off a figure."""
    if not all(c in paper.index for c in claim.columns):
        return ""
    a, b = (paper.loc[c, "value"] for c in claim.columns)
    if claim.kind == "relative":
        return f"{(a / b - 1) * 100:+.0f} %"
    approximate = any(paper.loc[c, "approximate"] for c in claim.columns)
    return f"{'~' if approximate else ''}{a - b:+.3f}"


def _compare(claim: Claim, scores: Scores, paper: pd.DataFrame, level: float) -> dict | None:
    strata, by_user, seeds = scores.strata(*claim.columns)
    if not strata:
        return None
    statistic = stats.relative_of if claim.kind == "relative" else stats.difference_of
    ci = stats.bootstrap(strata, statistic, level)
    if claim.kind == "relative":
        shown = (f"{ci.mean * 100:+.1f} %", "" if math.isnan(ci.low) else
                 f"[{ci.low * 100:+.1f} %, {ci.high * 100:+.1f} %]")
    else:
        shown = (f"{ci.mean:+.3f}", "" if math.isnan(ci.low) else f"[{ci.low:+.3f}, {ci.high:+.3f}]")
    return _row(_paper_value(claim, paper), shown, ci, claim, seeds, by_user)


def _spearman(claim: Claim, scores: Scores, setting: dict[str, float], level: float) -> dict | None:
    metric = claim.columns[0][1]
    present = sorted((x, v) for v, x in setting.items() if scores.seeds(v, metric))
    if len({p for p, _ in present}) < 3:
        return None
    strata, by_user, seeds = scores.strata(*((v, metric) for _, v in present))
    if not strata:
        return None
    ci = stats.bootstrap(strata, stats.spearman_of([p for p, _ in present]), level)
    over = ", ".join(f"{x:g}" for x, _ in present)
    shown = (f"{ci.mean:+.2f}", "" if math.isnan(ci.low) else f"[{ci.low:+.2f}, {ci.high:+.2f}]")
    paper = claim.paper or f"rho {'<' if claim.side < 0 else '>'} 0"
    return _row(paper, shown, ci, claim, seeds, by_user) | {
        "claim": claim.text.replace(", ", f" (Spearman rho over {SWEEPS[claim.setting][1]} {over}), ", 1)}


def _row(paper: str, shown: tuple[str, str], ci: stats.Interval, claim: Claim, seeds: list[int],
         by_user: bool) -> dict:
    return {"paper": paper, "measured": shown[0], "interval": shown[1],
            "verdict": verdict(ci.mean, ci.low, ci.high, claim.side, MARGINS[claim.kind]),
            "estimate": ci.mean, "low": ci.low, "high": ci.high, "seeds": " ".join(map(str, seeds)),
            "unit": UNITS[by_user]}


def _diverges(claim: Claim, records: list[dict]) -> dict | None:
    runs = [r for r in records if r["variant"] == claim.variant and r["status"] in ("done", "failed")]
    if not runs:
        return None
    diverged = sum(r["status"] == "failed" and bool(DIVERGED.search(r.get("error") or "")) for r in runs)
    finished = sum(r["status"] == "done" for r in runs)
    if diverged == len(runs):
        found = "reproduced"
    elif diverged == 0 and finished:
        found = "not reproduced"
    else:
        found = "inconclusive"
    measured = f"{diverged} of {len(runs)} runs diverged" + (f", {finished} finished" if finished else "")
    return {"paper": "diverges", "measured": measured, "interval": "", "verdict": found, "estimate": diverged,
            "low": math.nan, "high": math.nan, "seeds": " ".join(str(r["seed"]) for r in sorted(
                runs, key=lambda r: r["seed"])), "unit": "runs"}


SWEEPS = {"patch": (PATCH_GROUP, "EMG patch"), "fraction": (FRACTION_GROUP, "data fraction")}  # column: group, name


def sweeps(values: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per swept setting (a column of the values frame): its value for CPEP and each variant of its group (its first
    seed's: a setting that differs between seeds is reported by the report's configuration notes)."""
    found = {}
    for column, (group, _) in SWEEPS.items():
        sel = sweep_rows(values, group)
        found[column] = {v: float(x) for v, x in sel.groupby("variant")[column].first().items()}
    return found


def notes(claims_table: pd.DataFrame, level: float) -> list[str]:
    """How the intervals are computed, the verdict rule, and what the marks in the table's cells mean."""
    found = [f"Intervals: {stats.describe_stratified(level)}; matched on the seeds and users that every variant of "
             f"the claim has (the seeds alone where a record has no per-user breakdown).", f"Verdicts: {RULE}"]
    if claims_table["paper"].str.startswith("~").any():
        found.append("paper: ~ marks a value computed from a number read off a figure by a third party "
                     "(results/emg2pose.csv).")
    if (claims_table["interval"] == "").any():
        found.append("no interval: one seed only, or a count of runs.")
    return found


def markdown(claims_table: pd.DataFrame, level: float) -> str:
    parts = ["# The paper's claims", ""]
    if claims_table.empty:
        return "\n".join(parts + ["None: the records hold none of the variants the claims compare."]) + "\n"
    header = ["claim", "paper", "measured", "interval", "verdict"]
    parts += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    parts += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in header) + " |"
              for _, r in claims_table.iterrows()]
    return "\n".join(parts + [""] + [f"- {n}" for n in notes(claims_table, level)]) + "\n"


def print_claims(claims_table: pd.DataFrame, console, level: float) -> None:
    from rich.table import Table
    from rich.text import Text
    if claims_table.empty:
        return
    table = Table("claim", "paper", "measured", "interval", "verdict", title="the paper's claims",
                  title_justify="left")
    styles = {"reproduced": "green", "not reproduced": "red", "inconclusive": "yellow"}
    for _, r in claims_table.iterrows():
        table.add_row(r["claim"], r["paper"], r["measured"], r["interval"],
                      Text(r["verdict"], style=styles[r["verdict"]]))
    console.print(table)
    console.print(Text("\n".join(notes(claims_table, level)), style="dim"))
