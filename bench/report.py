"""Result tables of a suite."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.store import Store
from bench.suites import Suite
from cpep.pipeline import METRICS


def frame(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r["status"] == "done":
            rows += [{"variant": r["variant"], "seed": r["seed"], "metric": m, "value": v}
                     for m, v in r["metrics"].items() if v is not None]
    return pd.DataFrame(rows, columns=["variant", "seed", "metric", "value"])


def show(suite: Suite, store: Store, console: Console) -> None:
    records = store.records(suite.name)
    df = frame(records)
    table = Table("variant", "n", *METRICS, title=f"{suite.name}: balanced accuracy, mean over seeds")
    for v in suite.variants:
        sub = df[df["variant"] == v.name]
        means = sub.groupby("metric")["value"].mean()
        n = sub["seed"].nunique()
        table.add_row(v.label, str(n), *(f"{means[m]:.3f}" if m in means else "-" for m in METRICS))
    console.print(table)
    for r in records:
        if r["status"] != "done":
            console.print(f"{r['variant']} seed {r['seed']}: {r['status']} {r.get('error') or ''}")
