"""The variance of each metric that each source of randomness contributes (Bouthillier et al., MLSys 2021).

A variant whose runs leave one seed source (`seeds.init`, `seeds.order` or `seeds.data`) to follow the run seed
and set the others varies that source alone: the variance of a metric over its runs (sample variance, n - 1) is
the variance attributable to that source with the others fixed. The `variance` suite has one such variant per
source.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.report.frames import SEED_SOURCES, Report, metric_name

SOURCE_NAMES = {"init": "model initialisation", "order": "data order", "data": "data (which users)"}
COLUMNS = ["source", "variant", "metric", "n", "mean", "variance", "sd"]


def by_source(values: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (source, variant, metric) over the runs that vary that source alone."""
    rows = []
    for source in SEED_SOURCES:
        varied = values[values["source"] == source]
        for variant in dict.fromkeys(varied["variant"]):
            for m in metrics:
                x = varied.loc[(varied["variant"] == variant) & (varied["metric"] == m), "value"]
                rows.append({"source": source, "variant": variant, "metric": m, "n": len(x), "mean": x.mean(),
                             "variance": x.var(ddof=1), "sd": x.std(ddof=1)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(sub: pd.DataFrame, metric: str) -> str:
    row = sub[sub["metric"] == metric]
    if row.empty or row["n"].iloc[0] < 2:
        return "-"
    return f"{row['variance'].iloc[0]:.5f} ({row['sd'].iloc[0]:.3f})"


def _rows(report: Report) -> list[list[str]]:
    out = []
    for (source, variant), sub in report.variance.groupby(["source", "variant"], sort=False):
        n = int(sub["n"].max())
        out.append([f"{SOURCE_NAMES[source]}: {report.labels.get(variant, variant)}", str(n)]
                   + [_cell(sub, m) for m in report.metrics])
    return out


CAPTION = ("variance over seeds of each metric with one source of randomness varied and the others fixed "
           "(sample variance; sd in parentheses)")


def markdown(report: Report) -> str:
    header = ["source (variant)", "n"] + [metric_name(m) for m in report.metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    return f"{CAPTION}\n\n" + "\n".join(lines) + "\n"


def print_table(report: Report, console: Console) -> None:
    if report.variance.empty:
        return
    table = Table("source (variant)", "n", *[metric_name(m) for m in report.metrics], title=CAPTION)
    for row in _rows(report):
        table.add_row(*row)
    console.print(table)
