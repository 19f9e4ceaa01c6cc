"""The published numbers the report puts beside ours: results/<dataset>.csv (see results/README.md), for runs on that
dataset read with its built-in gesture vocabulary; results/emg2pose.csv holds the CPEP paper's. Other data has no
published reference: the report shows our numbers alone.

The package reads them through bench/report/published/<dataset>.csv, symbolic links to results/, so that an
installed package has them and there is one copy to edit.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

PRIMARY = "cpep"  # the CPEP paper's own table; the other papers' rows are shown beside it where they differ
COLUMNS = ["paper", "variant", "metric", "value", "approximate", "source"]


def load(dataset: str = "emg2pose", vocab: str | None = None) -> pd.DataFrame:
    """The published numbers for runs on `dataset` with gesture vocabulary `vocab` (None: its built-in one); none
    (an empty frame) where nothing was published for that data."""
    from bench import plugins
    path = resources.files("bench.report") / "published" / f"{dataset}.csv"
    if not path.is_file() or (vocab is not None and vocab != plugins.get("dataset", dataset).vocab):
        return pd.DataFrame(columns=COLUMNS).astype({"value": float, "approximate": bool})
    with path.open() as f:
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
    return rest[pd.Series(keep, index=rest.index, dtype=bool)]
