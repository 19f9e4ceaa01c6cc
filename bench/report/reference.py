"""The published numbers the report puts beside ours: results/paper.csv (see results/README.md).

The package reads it through bench/report/published/paper.csv, a symbolic link to results/paper.csv, so that an installed
package has it and there is one copy to edit.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

PRIMARY = "cpep"  # the CPEP paper's own table; the other papers' rows are shown beside it where they differ
COLUMNS = ["paper", "variant", "metric", "value", "approximate", "source"]


def load() -> pd.DataFrame:
    with (resources.files("bench.report") / "published" / "paper.csv").open() as f:
        df = pd.read_csv(f, dtype={"paper": str, "variant": str, "metric": str, "value": float, "source": str})
    df["approximate"] = df["approximate"].astype(str).str.lower().eq("true")
    return df[COLUMNS]


def primary(df: pd.DataFrame) -> pd.DataFrame:
    """(variant, metric) -> value, approximate, source from the CPEP paper."""
    return df[df["paper"] == PRIMARY].set_index(["variant", "metric"])


def others(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the other papers whose value differs from the CPEP paper's (or that it lacks)."""
    main = primary(df)["value"]
    rest = df[df["paper"] != PRIMARY]
    keep = [main.get((v, m)) != value for v, m, value in zip(rest["variant"], rest["metric"], rest["value"])]
    return rest[keep]
