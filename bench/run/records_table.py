"""Every run record of a runs directory as one table, `<results>/records.parquet`: a row per run x metric.

Columns: suite, dataset, variant, seed, metric, value (null: no value), status, not_applicable (the reason a metric
does not apply), the run's label, group, method, error, stale flag, run key and timings; its provenance (commit,
dirty, config_hash, data_identity, device, device_name, precision, threads, host, slurm_job_id, and version_<package>
for each package the record names); and `record`, the whole record as JSON text (its configuration, stages with
their training histories, per-user scores...), from which the report reads it back exactly. A run without any
metric (failed, running) has one row with metric null.

SLURM jobs and local runs write records concurrently, each its own JSON file, so the table is never appended to:
it is rebuilt from the JSON records, written to a temporary file and renamed into place, at the end of
`cpep-bench run` and by `cpep-bench report`, which reads its records back from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from cpep.config import digest
from cpep.errors import DiskFull
from cpep.files import replace_atomically

NAME = "records.parquet"
RUN = ["suite", "dataset", "data_key", "variant", "seed"]  # a run: two data identities are two runs
FLAT = ["label", "group", "method", "status", "error", "error_log", "stale", "run_key", "seconds", "updated", "schema"]


def path(root: Path) -> Path:
    return Path(root) / NAME


def _provenance(record: dict) -> dict:
    prov = record.get("provenance") or {}
    git = prov.get("git") or {}
    cfg = record.get("config") or {}
    row = {"commit": git.get("commit"), "dirty": git.get("dirty"),
           "config_hash": digest(cfg) if cfg else None,
           "data_root": record.get("data_root"),
           "device": prov.get("device"), "device_name": prov.get("name"), "precision": prov.get("precision"),
           "threads": prov.get("threads"), "host": prov.get("host"), "slurm_job_id": prov.get("slurm_job_id")}
    return row | {f"version_{name}": v for name, v in (prov.get("versions") or {}).items()}


def rows(record: dict) -> list[dict]:
    """The table's rows of one record."""
    run = {k: record.get(k) for k in RUN + FLAT}
    run["stale"] = bool(run["stale"])
    run |= _provenance(record) | {"record": json.dumps(record, sort_keys=True)}
    metrics, na = record.get("metrics") or {}, record.get("not_applicable") or {}
    names = list(metrics) + [m for m in na if m not in metrics]
    if not names:
        return [run | {"metric": None, "value": None, "not_applicable": None}]
    return [run | {"metric": m, "value": metrics.get(m), "not_applicable": na.get(m)} for m in names]


def frame(records: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([row for r in records for row in rows(r)])
    df["value"] = df["value"].astype("float64")
    first = RUN + ["metric", "value", "status", "not_applicable"]
    return df[first + [c for c in df.columns if c not in first]]


def rebuild(store) -> Path | None:
    """Write the table of every record in the runs directory; None (nothing written) when it has none, or when
    it cannot be written (a read-only runs directory: one warning line; the records themselves are intact)."""
    records = store.records()
    if not records:
        return None
    df = frame(records)
    target = path(store.root)
    try:
        replace_atomically(target, lambda tmp: df.to_parquet(tmp, index=False))
    except (OSError, DiskFull) as e:
        print(f"warning: {target} not written ({getattr(e, 'strerror', None) or e})", file=sys.stderr)
        return None
    return target


def records(table: pd.DataFrame) -> list[dict]:
    """The records a table holds, in its order: what the report reads."""
    return [json.loads(run["record"].iloc[0]) for _, run in table.groupby(RUN, sort=False, dropna=False)]


def load(store, suite: str) -> list[dict]:
    """Rebuild the runs directory's table, then read the suite's records from it (from the JSON records when
    the table cannot be written)."""
    if rebuild(store) is None:
        return store.records(suite)
    table = pd.read_parquet(path(store.root))
    return records(table[table["suite"] == suite])
