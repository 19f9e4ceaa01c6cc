"""The report's tables as text: Markdown and rich tables for the terminal, with the cells and notes that
bench.report.latex shares."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from rich import box
from rich.console import Console, Group
from rich.table import Column, Table
from rich.text import Text

from bench.report import claims, scores, significance, stats
from bench.report.frames import REFERENCE_VARIANT, STALE, Report, metric_name

SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
def unpublished_note(report: Report) -> str:
    return (f"No published reference for {report.dataset} data read this way: our numbers alone (the paper's "
            f"numbers are shown beside runs on emg2pose with its gesture vocabulary; results/README.md says how to "
            f"add a reference for other data).")
IMPROVEMENT_NOTE = ("P(variant > CPEP): the paired win rate, the fraction of each seed's held-out users on which the "
                    "variant scores above CPEP (a tie counting one half), averaged over the seeds; rliable's "
                    "probability of improvement compares every run of one with every run of the other instead, which "
                    "is the same only with one seed. 0.5: no difference; strata: the matched (seed, user) pairs.")
PAIR_STALE = "the variant's or CPEP's result on one of the shared seeds is stale"
BOUNDS_NOTE = ("floor and ceiling (last rows): the same linear probe on features computed without learning, EMG "
               "log-power (floor) and the pose itself (ceiling), on the same windows; they have no paper numbers.")


def marked(text: str, stale: bool) -> str:
    return text + STALE if stale else text


def stale_note(report: Report, marked_rows: str = "the variant has stale results") -> list[str]:
    """What the stale mark means and which runs are stale, as one line (none when every result is fresh)."""
    if not report.stale:
        return []
    runs = "; ".join(f"{v} seed{'s' * (len(seeds) > 1)} {' '.join(map(str, seeds))}"
                     for v, seeds in report.stale.items())
    return [f"{STALE}: {marked_rows}, computed by older code (stages reused although the code that made them has "
            f"changed since); rerun without --reuse-stale to recompute. Stale runs: {runs}."]


def estimate(mean: float, low: float, high: float, n: int, method: str, signed: bool = False) -> str:
    """'0.740 ± 0.099' (t), '0.740 [0.700, 0.780]' (bootstrap, bca), '0.740 (n=k)' (no interval), 'no result'."""
    if n == 0:
        return "no result"
    f = "{:+.3f}" if signed else "{:.3f}"
    mean = round(mean, 3) + 0.0  # no "-0.000"
    if n == 1 or math.isnan(low):
        return f"{f.format(mean)} (n={n})"
    if method == "t":
        return f"{f.format(mean)} ± {(high - low) / 2:.3f}"
    return f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"


def paper_value(row) -> str:
    if math.isnan(row.paper):
        text = "-" if row.in_paper else ""
    else:
        # approximate numbers were read off a figure to two decimals
        text = f"~{row.paper:.2f}" if row.paper_approximate else f"{row.paper:.3f}"
    if not math.isnan(row.other_paper):
        text += f" ({row.other_paper:.3f})"
    return text.strip()


def na_marks(report: Report) -> dict[str, int]:
    """Footnote number of each reason a metric is not applicable, in order of appearance."""
    reasons = [r for r in report.summary["not_applicable"] if r]
    return {reason: i + 1 for i, reason in enumerate(dict.fromkeys(reasons))}


def na_cell(marks: dict[str, int], reason: str) -> str:
    return "-" + str(marks[reason]).translate(SUPERSCRIPT)


def seeds_cell(report: Report, variant: str) -> str:
    have, asked = len(report.done[variant]), len(report.seeds)
    return str(have) if have >= asked else f"{have} of {asked}"


def main_rows(report: Report) -> list[dict]:
    """Per variant: label, seeds cell, fewer (bool), per metric its (ours, paper) texts and its IQM text."""
    marks = na_marks(report)
    rows = []
    for variant in report.variants:
        sub = report.summary[report.summary["variant"] == variant].set_index("metric")
        cells, iqm, full_n = {}, {}, len(report.done[variant])
        for m in report.metrics:
            r = sub.loc[m]
            if r.not_applicable:
                ours = iqm[m] = na_cell(marks, r.not_applicable)
            else:
                ours = estimate(r["mean"], r.ci_low, r.ci_high, r.n, report.method)
                iqm[m] = estimate(r.iqm, r.iqm_low, r.iqm_high, r.n, report.method)
                if 1 < r.n < full_n:
                    ours += f" (n={r.n})"
            cells[m] = (ours, paper_value(r))
        label = marked(report.labels[variant], variant in report.stale)
        rows.append({"variant": variant, "label": label, "seeds": seeds_cell(report, variant),
                     "fewer": len(report.done[variant]) < len(report.seeds), "cells": cells, "iqm": iqm,
                     "bound": report.is_bound(variant)})
    return rows


def improvement_rows(report: Report) -> list[dict]:
    """P(variant > CPEP) per variant and metric, as difference_rows shapes them; none without CPEP."""
    found = report.improvement[report.improvement["b"] == REFERENCE_VARIANT].set_index(["a", "metric"])
    marks, na = na_marks(report), report.summary.set_index(["variant", "metric"])["not_applicable"]
    rows = []
    for variant in dict.fromkeys(found.index.get_level_values("a")):
        stale_seeds = set(report.stale.get(variant, []) + report.stale.get(REFERENCE_VARIANT, []))
        cells, stale = {}, False
        for m in report.metrics:
            if (variant, m) not in found.index:
                reason = na.get((variant, m)) or na.get((REFERENCE_VARIANT, m))
                cells[m] = (na_cell(marks, reason) if reason else "no shared seeds", False)
                continue
            r = found.loc[(variant, m)]
            text = estimate(r.p_a_above_b, r.ci_low, r.ci_high, len(r.seeds.split()), report.method)
            cells[m] = (text + significance.mark(r.p, r.p_holm, report.alpha), bool(r.p_holm < report.alpha))
            stale |= bool(stale_seeds & set(map(int, r.seeds.split())))
        rows.append({"variant": variant, "label": marked(report.labels[variant], stale), "cells": cells,
                     "strata": str(found.loc[variant, "strata"].max()), "bound": report.is_bound(variant),
                     "stale": stale})
    return rows


def difference_rows(report: Report) -> list[dict]:
    marks = na_marks(report)
    rows = []
    for variant in dict.fromkeys(report.differences["variant"]):
        sub = report.differences[report.differences["variant"] == variant].set_index("metric")
        cells = {}
        for m in report.metrics:
            r = sub.loc[m]
            if r.not_applicable:
                cells[m] = (na_cell(marks, r.not_applicable), False)
            elif r.n == 0:
                cells[m] = ("no shared seeds", False)
            else:
                text = estimate(r["mean"], r.ci_low, r.ci_high, r.n, report.method, signed=True)
                cells[m] = (text + significance.mark(r.p, r.p_holm, report.alpha), bool(r.significant_holm))
        pairs = int(sub["n"].max()) if len(sub) else 0
        label = marked(report.labels[variant], sub["stale"].any())
        rows.append({"variant": variant, "label": label, "pairs": str(pairs), "cells": cells,
                     "bound": report.is_bound(variant)})
    return rows


def rule_before(rows: list[dict]) -> int | None:
    """Where the tables draw a rule: before the first floor or ceiling row (they come last), if others precede it."""
    return next((i for i, r in enumerate(rows) if r["bound"]), None) or None


def na_notes(report: Report) -> list[str]:
    """What each not-applicable mark (-¹, -²...) stands for."""
    return [f"-{str(i).translate(SUPERSCRIPT)} not applicable: {reason}." for reason, i in na_marks(report).items()]


def seeds_note(report: Report) -> str:
    asked = len(report.seeds)
    return (f"n: seeds with a result; 'k of {asked}': a result on only k of the {asked} seeds asked "
            f"({', '.join(map(str, report.seeds))}); cpep-bench report lists each run without a result and why.")


def count_notes(cells: Iterable[str]) -> list[str]:
    """What the '(n=1)' and '(n=k)' found in the cells mean."""
    found = {int(k) for cell in cells for k in re.findall(r"\(n=(\d+)\)", cell)}
    notes = ["(n=1): one seed only (in a comparison: one seed both have), so no interval."] if 1 in found else []
    if found - {1}:
        notes.append("(n=k): k seeds; after an interval, that metric has a result on only k of the variant's n "
                     "seeds; without one, k is fewer seeds than the interval method serves.")
    return notes


def main_notes(report: Report) -> list[str]:
    """What the main table's cells (mean and paper columns) and marks mean."""
    notes = [scores.interval_text(report.summary, report.method, report.level) + ".", seeds_note(report)]
    notes += scores.fallback_notes(report.summary)
    summary = report.summary
    if summary["paper_approximate"].any():
        notes.append("paper: ~ marks a number read off a figure by a third party (results/emg2pose.csv).")
    others = sorted({s.split(" via ")[0] for s in summary.loc[summary["other_paper"].notna(), "other_source"]})
    if others:
        notes.append(f"paper (x): the number in {'; '.join(others)}, where it differs from the CPEP paper's.")
    if (summary["in_paper"] & summary["paper"].isna()).any():
        notes.append("paper -: the paper has no number for this metric of the variant (an empty paper cell: the "
                     "variant is not in the paper).")
    if report.method == "t" and ((summary["n"] > 1) & (summary["ci_low"] == summary["ci_high"])).any():
        notes.append("± 0.000: the same value for every seed.")
    notes += count_notes(r["cells"][m][0] for r in main_rows(report) for m in report.metrics)
    notes += na_notes(report)
    notes += stale_note(report)
    if any(report.is_bound(v) for v in report.variants):
        notes.append(BOUNDS_NOTE)
    levels = report.chance_by_class_set
    if levels:
        notes.append("chance (balanced accuracy of guessing): "
                     + ", ".join(f"{level:.3f} {name} ({round(1 / level)} classes)" for name, level in levels.items())
                     + ".")
    compared = summary[summary["paper"].notna() & summary["ci_low"].notna()]
    if len(compared):
        notes.append(f"the paper's number lies inside our interval for {int(compared['paper_in_ci'].sum())} of "
                     f"{len(compared)} (variant, metric) pairs.")
    return notes


def iqm_notes(report: Report) -> list[str]:
    """What the IQM cells and their marks mean."""
    notes = [scores.iqm_note(report.summary, report.method, report.level), seeds_note(report)]
    notes += scores.fallback_notes(report.summary) + na_notes(report) + stale_note(report)
    notes += count_notes(c for r in main_rows(report) for c in r["iqm"].values())
    return notes + ([BOUNDS_NOTE] if any(report.is_bound(v) for v in report.variants) else [])


def difference_notes(report: Report) -> list[str]:
    """What the paired differences and their marks mean."""
    how = (f"{scores.describe(report.summary, report.method, report.level)}, of each seed's mean difference over "
           f"the held-out users both have (the seeds' overall scores where a record has no per-user breakdown).")
    notes = ["variant minus CPEP on the seeds both have (pairs: how many).", how,
             significance.marks_note(report.alpha, report.test, "no difference")]
    notes += count_notes(r["cells"][m][0] for r in difference_rows(report) for m in report.metrics)
    notes += na_notes(report)
    return notes + (stale_note(report, PAIR_STALE) if report.differences["stale"].any() else [])


def improvement_notes(report: Report) -> list[str]:
    """What the P(variant > CPEP) cells and their marks mean."""
    rows = improvement_rows(report)
    how = scores.describe(report.summary, report.method, report.level)
    notes = [IMPROVEMENT_NOTE, f"{how}; every pair of variants is in improvement.csv.",
             significance.marks_note(report.alpha, report.test, "0.5")]
    notes += scores.fallback_notes(report.summary) + count_notes(r["cells"][m][0] for r in rows for m in report.metrics)
    notes += na_notes(report)
    return notes + (stale_note(report, PAIR_STALE) if any(r["stale"] for r in rows) else [])


def ordering_lines(report: Report) -> list[str]:
    """Per metric: Kendall's tau, pair counts, and the pairs whose paper order we do not reproduce."""
    lines = []
    for m, tau in report.tau.items():
        sub = report.ordering[report.ordering["metric"] == m]
        count = sub["verdict"].value_counts()
        tau_text = "undefined" if math.isnan(tau) else f"{tau:+.2f}"
        if not math.isnan(p := report.tau_p.get(m, math.nan)):
            tau_text += f" (one-sided p = {p:.3g} that an order unrelated to the paper's agrees as well)"
        ties = "".join(f", {count[t]} {t}" for t in ("tied here", "tied in the paper") if count.get(t))
        line = (f"{metric_name(m)}: Kendall tau = {tau_text} over {len(set(sub['first']) | set(sub['second']))} "
                f"variants; of {len(sub)} pairs, {count.get('agrees', 0)} in the paper's order, "
                f"{count.get('disagrees', 0)} reversed{ties}")
        reversed_ = [f"{marked(r.first, r.first in report.stale)} {'>' if r.paper_first > r.paper_second else '<'} "
                     f"{marked(r.second, r.second in report.stale)}"
                     for r in sub.itertuples() if r.verdict == "disagrees"]
        lines.append(line + (f"; reversed (the paper's order shown): {', '.join(reversed_)}" if reversed_ else ""))
    return lines + [stats.AGREEMENT_NOTE] if lines else lines


def footer(report: Report) -> list[str]:
    return [f"Data: {report.data}; one data identity per report, never pooled.",
            f"Seeds asked: every seed with a record of suite '{report.suite}' on this data "
            f"({', '.join(map(str, report.seeds))}); a variant's missing seeds are listed above, never dropped."]


# Markdown

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def markdown(report: Report) -> str:
    parts = [f"# {report.suite}: balanced accuracy on {report.data}", ""]
    if not report.published:
        parts += [f"> {unpublished_note(report)}", ""]
    paper = ("paper",) if report.published else ()
    header = ["method", "n"] + [h for m in report.metrics for h in (metric_name(m), "IQM", *paper)]
    rows = [[r["label"], f"**{r['seeds']}**" if r["fewer"] else r["seeds"]]
            + [c for m in report.metrics for c in (r["cells"][m][0], r["iqm"][m], r["cells"][m][1])[:2 + len(paper)]]
            for r in main_rows(report)]
    parts += [_md_table(header, rows), ""] + [f"- {n}" for n in dict.fromkeys(main_notes(report) + iqm_notes(report))]
    diffs = difference_rows(report)
    parts += ["", "## Paired differences against CPEP", ""]
    if diffs:
        parts += [_md_table(["method", "pairs"] + [metric_name(m) for m in report.metrics],
                            [[r["label"], r["pairs"]] + [r["cells"][m][0] for m in report.metrics] for r in diffs]),
                  ""] + [f"- {n}" for n in difference_notes(report)]
    else:
        parts.append("None: the suite has no CPEP variant, or no other variant.")
    better = improvement_rows(report)
    if better:
        parts += ["", "## Probability of improvement over CPEP", "",
                  _md_table(["method", "strata"] + [metric_name(m) for m in report.metrics],
                            [[r["label"], r["strata"]] + [r["cells"][m][0] for m in report.metrics] for r in better]),
                  ""] + [f"- {n}" for n in improvement_notes(report)]
    if report.published:
        parts += ["", "## Ordering against the paper", ""]
        parts += [f"- {line}" for line in ordering_lines(report)] or ["No metric has two variants with paper numbers."]
    parts += ["", "## Runs without a result", ""]
    if len(report.incomplete):
        parts.append(_md_table(["variant", "seeds", "status", "reason"], report.incomplete.astype(str).values.tolist()))
    else:
        parts.append("None: every variant has a result for every seed asked.")
    parts += ["", "## Notes", ""] + [f"- {n}" for n in report.notes + footer(report)]
    return "\n".join(parts) + "\n"


# terminal

METRICS_PER_TABLE = 4  # per terminal table: four estimates and a label fit in 80 columns


def _notes(lines: list[str], style: str = "dim") -> Text:
    return Text("\n".join(lines), style=style)


def _stacked(text: str) -> str:
    """An estimate over two lines ('0.872' above '± 0.029'), so that four metrics fit in 80 columns."""
    for sep in (" ± ", " [", " (n=", " ("):
        text = text.replace(sep, "\n" + sep[1:], 1)
    return text


def _table(first: str, count: str, title: str, metrics: list[str]) -> Table:
    """No vertical rules: the columns a report needs fit in 80 terminal columns."""
    # No minimum widths and no edge padding: with either, rich 15 crops the last column instead of wrapping.
    table = Table(Column(first), Column(count, no_wrap=True), title=title, title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)
    for m in metrics:
        table.add_column(metric_name(m))
    return table


def _metric_groups(metrics: list[str]) -> list[list[str]]:
    """The metrics in groups of four: one terminal table per group, so that each stays within 80 columns."""
    return [metrics[i:i + METRICS_PER_TABLE] for i in range(0, len(metrics), METRICS_PER_TABLE)] or [[]]


def _print_tables(console: Console, title: str, first: str, count: str, rows: list[dict], metrics: list[str],
                  cell) -> None:
    """`rows` as one table per group of metrics; cell(row, metric) -> Text."""
    groups = _metric_groups(metrics)
    rule = rule_before(rows)
    for g, group in enumerate(groups):
        suffix = f" ({g + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = _table(first, count, title + suffix, group)
        for i, r in enumerate(rows):
            if i == rule:
                table.add_section()
            table.add_row(r["label"], r[count], *(cell(r, m) for m in group))
        console.print(table)


def _main_cell(row: dict, metric: str) -> Text:
    ours, paper = row["cells"][metric]
    return Text(_stacked(ours)) + Text(_stacked(f"\npaper {paper}") if paper not in ("", "-") else "", style="dim")


def _difference_cell(row: dict, metric: str) -> Text:
    text, significant = row["cells"][metric]
    return Text(_stacked(text), style="bold" if significant else "")


def print_report(report: Report, console: Console) -> None:
    main = [r | {"n": Text(r["seeds"], style="bold red" if r["fewer"] else "")} for r in main_rows(report)]
    _print_tables(console, f"{report.suite}: balanced accuracy on {report.dataset} data", "method", "n", main,
                  report.metrics, _main_cell)
    shown = main_notes(report)
    console.print(_notes(shown))
    if not report.published:
        console.print(Text(unpublished_note(report), style="yellow"))
    diffs = difference_rows(report)
    if diffs:
        _print_tables(console, "paired differences against CPEP (variant minus CPEP on shared seeds)", "method",
                      "pairs", diffs, report.metrics, _difference_cell)
        console.print(_notes(difference_notes(report)))
    iqm = [r | {"n": r["seeds"], "cells": {m: (c, False) for m, c in r["iqm"].items()}} for r in main]
    _print_tables(console, "IQM of the seed x user scores", "method", "n", iqm, report.metrics, _difference_cell)
    console.print(_notes([n for n in iqm_notes(report) if n not in shown]))
    better = improvement_rows(report)
    if better:
        _print_tables(console, "P(variant > CPEP)", "method", "strata", better, report.metrics, _difference_cell)
        console.print(_notes(improvement_notes(report)))
    claims.print_claims(report.claims, console, claims.settings_of(report))
    lines = ordering_lines(report)
    if lines:
        console.print(Group(Text("ordering against the paper", style="bold"), _notes(lines, "")))
    if len(report.incomplete):
        table = Table("variant", "seeds", "status", "reason", title="runs without a result", title_justify="left")
        for r in report.incomplete.itertuples():
            table.add_row(r.variant, r.seeds, Text(r.status, style="red"), r.reason)
        console.print(table)
    console.print(_notes(report.notes + footer(report)))
