"""The report as the terminal shows it by default: the main table, each estimate with its interval in one cell and
the paper's number beside it where it applies, then the paper's claims; each footnote once, every table fitted to
the console's width without splitting a number. `cpep-bench report --full` prints every table instead
(bench.report.tables); the files hold everything.

Marks mean the same in every report: `n/a` not applicable (the footnote says why, per variant), `-` no result
(listed under the table), `†` stale, `~` a paper number read off a figure, `k/N` in the n column a result on k of
the N seeds asked, `(n=k)` a metric with a result on fewer seeds than its row.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from bench.report import claims as paper_claims
from bench.report import scores, tables
from bench.report.frames import Report, metric_name

NA, NONE = "n/a", "-"
LABEL_WIDTH, MIN_LABEL_WIDTH = 30, 16  # the method column wraps its labels within these; numbers never wrap
VERDICT_STYLES = {"reproduced": "green", "not reproduced": "red", "inconclusive": "yellow"}


def number(value: float) -> str:
    return f"{round(value, 3) + 0.0:.3f}"  # no "-0.000"


def estimate(row, method: str, seeds: int) -> str:
    """A summary row as one cell: '0.740±0.099' (t), '0.740 [0.700,0.780]' (bootstrap), '0.740' (one seed), 'n/a'
    or '-'; '(n=k)' after it where the metric has a result on fewer of the row's seeds."""
    if row.not_applicable:
        return NA
    if row.n == 0:
        return NONE
    text = number(row["mean"])
    if row.n > 1 and not math.isnan(row.ci_low):
        text += (f"±{(row.ci_high - row.ci_low) / 2:.3f}" if method == "t"
                 else f" [{number(row.ci_low)},{number(row.ci_high)}]")
    return text + (f" (n={row.n})" if row.n < seeds else "")


def paper(row) -> str:
    if math.isnan(row.paper):
        return ""
    return f"~{row.paper:.2f}" if row.paper_approximate else f"{row.paper:.3f}"


def main_cells(report: Report) -> list[dict]:
    """Per variant: label (stale marked), n cell, and per metric (ours, paper)."""
    rows = []
    for variant in report.variants:
        sub = report.summary[report.summary["variant"] == variant].set_index("metric")
        have, asked = len(report.done[variant]), len(report.seeds)
        rows.append({"label": tables.marked(report.labels[variant], variant in report.stale),
                     "n": str(have) if have >= asked else f"{have}/{asked}", "fewer": have < asked,
                     "bound": report.is_bound(variant),
                     "cells": {m: (estimate(sub.loc[m], report.method, have), paper(sub.loc[m]))
                               for m in report.metrics}})
    return rows


def _width(texts, header: str) -> int:
    return max([len(header), *map(len, texts)])


def metric_groups(report: Report, rows: list[dict], width: int, label: int) -> list[list[str]]:
    """The metrics in consecutive groups whose table fits `width` columns beside a method column `label` wide
    (one metric per table at the least)."""
    used = label + 1 + _width((r["n"] for r in rows), "n")
    groups, current, room = [], [], width - used
    for m in report.metrics:
        need = 1 + _width((r["cells"][m][0] for r in rows), metric_name(m))
        if report.published:
            need += 1 + _width((r["cells"][m][1] for r in rows), "paper")
        if current and need > room:
            groups.append(current)
            current, room = [], width - used
        current.append(m)
        room -= need
    return groups + [current] if current else groups or [[]]


def layout(report: Report, rows: list[dict], width: int) -> tuple[int, list[list[str]]]:
    """(the method column's width, the metric groups): the fewest tables, then the widest method column (the
    narrower it is, the more lines its labels wrap over)."""
    longest = _width((r["label"] for r in rows), "method")
    options = [(label, metric_groups(report, rows, width, label))
               for label in range(min(longest, LABEL_WIDTH), min(longest, MIN_LABEL_WIDTH) - 1, -1)]
    return min(options, key=lambda option: (len(option[1]), -option[0]))


def _table(title: str, *columns: Column) -> Table:
    return Table(*columns, title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 show_edge=False, pad_edge=False, padding=(0, 0, 0, 1), collapse_padding=True)


def print_main(report: Report, console: Console) -> None:
    rows = main_cells(report)
    label, groups = layout(report, rows, console.width)
    rule = tables.rule_before(rows)
    for g, group in enumerate(groups):
        part = f" ({g + 1}/{len(groups)})" if len(groups) > 1 else ""
        columns = [Column("method", max_width=label), Column("n", no_wrap=True, justify="right")]
        for m in group:
            columns.append(Column(metric_name(m), no_wrap=True, justify="right"))
            if report.published:
                columns.append(Column("paper", no_wrap=True, justify="right", style="dim"))
        table = _table(f"{report.suite}: balanced accuracy on {report.dataset} data{part}", *columns)
        for i, r in enumerate(rows):
            if i == rule:
                table.add_section()
            cells = [c for m in group for c in (r["cells"][m] if report.published else r["cells"][m][:1])]
            table.add_row(r["label"], Text(r["n"], style="bold red" if r["fewer"] else ""), *cells)
        console.print(table)


def na_note(report: Report) -> list[str]:
    """Why each n/a: the variants of each reason, in the order of the table."""
    reasons: dict[str, list[str]] = {}
    for r in report.summary[report.summary["not_applicable"] != ""].itertuples():
        shown = reasons.setdefault(r.not_applicable, [])
        if report.labels[r.variant] not in shown:
            shown.append(report.labels[r.variant])
    if not reasons:
        return []
    return [f"{NA}: not applicable: " + "; ".join(f"{why} ({', '.join(v)})" for why, v in reasons.items()) + "."]


def main_notes(report: Report) -> list[str]:
    """The main table's footnotes, each once, only those whose mark the table shows."""
    summary, cells = report.summary, [c for r in main_cells(report) for c in r["cells"].values()]
    notes = [("±" if report.method == "t" else "[low,high]") + ": " +
             scores.interval_text(summary, report.method, report.level) + "."]
    asked = len(report.seeds)
    notes.append(f"n: seeds with a result, of the {asked} asked ({', '.join(map(str, report.seeds))})"
                 + ("; k/N: a result on k of them" if any(len(s) < asked for s in report.done.values()) else "")
                 + ("; one seed: no interval" if (summary["n"] == 1).any() else "") + ".")
    if any("(n=" in ours for ours, _ in cells):
        notes.append("(n=k): that metric has a result on only k of the row's seeds.")
    notes += na_note(report)
    if any(ours == NONE for ours, _ in cells):
        notes.append(f"{NONE}: no result (the runs without a result are listed below).")
    if report.published:
        notes.append("paper: the CPEP paper's number" + ("; ~ read off a figure by a third party"
                                                         if summary["paper_approximate"].any() else "")
                     + " (table.md and report.html also give the follow-up paper's).")
        compared = summary[summary["paper"].notna() & summary["ci_low"].notna()]
        if len(compared):
            notes.append(f"The paper's number lies inside our interval for {int(compared['paper_in_ci'].sum())} of "
                         f"{len(compared)} (variant, metric) pairs.")
    else:
        notes.append(tables.unpublished_note(report))
    notes += tables.stale_note(report)
    if any(report.is_bound(v) for v in report.variants):
        notes.append("floor and ceiling (last rows): the same linear probe on EMG log-power and on the pose itself, "
                     "learning nothing.")
    if report.chance:
        notes.append("chance: " + ", ".join(f"{level:.3f} {name}" for name, level in
                                             report.chance_by_class_set.items()) + ".")
    return notes


def print_claims(report: Report, console: Console) -> None:
    """The paper's claims: the measured value and its interval in one cell, the verdict coloured."""
    found = report.claims
    if found.empty:
        return
    table = _table("the paper's claims", Column("claim", ratio=1), Column("paper", no_wrap=True, justify="right"),
                   Column("measured", no_wrap=True, justify="right"), Column("verdict", no_wrap=True),
                   Column("Holm", no_wrap=True))
    for _, r in found.iterrows():
        measured = f"{r['measured']} {r['interval']}".strip()
        table.add_row(r["claim"], r["paper"], measured, *(Text(r[c], style=VERDICT_STYLES.get(r[c], ""))
                                                          for c in ("verdict", "verdict_holm")))
    console.print(table)
    _print_notes(console, paper_claims.notes(found, paper_claims.settings_of(report)))


def incomplete_line(report: Report) -> list[str]:
    """Every run without a result, in one paragraph, with the error of each failed one (incomplete.csv and
    report.html give every reason)."""
    if not len(report.incomplete):
        return []
    runs = "; ".join(f"{r.variant} seed{'s' * (' ' in r.seeds)} {r.seeds}: {r.status}"
                     + (f" ({r.reason})" if r.status == "failed" else "") for r in report.incomplete.itertuples())
    return [f"Runs without a result (reasons in incomplete.csv, report.html and `cpep-bench status`): {runs}."]


def _print_notes(console: Console, notes: list[str]) -> None:
    console.print(Text("\n".join(dict.fromkeys(notes)), style="dim"), soft_wrap=False)


def print_report(report: Report, console: Console) -> None:
    print_main(report, console)
    _print_notes(console, main_notes(report))
    print_claims(report, console)
    _print_notes(console, incomplete_line(report) + report.notes + tables.footer(report))
