"""The rows of `cpep-bench perf`: one printed table, and the same rows as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rich.table import Table

from cpep.files import write_text_atomically

# (column, header) in table order; a row leaves out what does not apply to it. `section` and `kind` (which step:
# mae, align, supervised) are in the files only.
COLUMNS = (
    ("section", "section"), ("kind", "kind"), ("what", "what"), ("model", "model"), ("size", "size"),
    ("batch", "batch"), ("rate", "rate"), ("unit", "unit"), ("units_per_repeat", "units"), ("repeats", "reps"),
    ("gflop", "GFLOP each"), ("tflop_per_s", "TFLOP/s"), ("of_roofline", "of roofline"),
    ("peak_memory_mb", "peak MB"), ("vs_reference", "vs ref"),
)


def row(section: str, what: str, rate: float, unit: str, **fields) -> dict:
    unknown = set(fields) - {c for c, _ in COLUMNS}
    if unknown:
        raise ValueError(f"unknown perf columns {sorted(unknown)}")
    return {c: fields.get(c) for c, _ in COLUMNS} | {"section": section, "what": what, "rate": rate, "unit": unit}


def with_flops(r: dict, flops: int, roofline_flop_s: float) -> dict:
    """Fill the FLOP columns of a row whose rate counts units of `flops` FLOPs (a step, a matmul)."""
    per_unit = r["rate"] / (r["batch"] or 1)  # the rate counts windows; FLOPs are per step of a batch
    achieved = flops * per_unit
    return r | {"gflop": flops / 1e9, "tflop_per_s": achieved / 1e12, "of_roofline": achieved / roofline_flop_s}


def _cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if column in ("of_roofline", "vs_reference"):
            return f"{value:.3f}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


PRINTED = [(c, header) for c, header in COLUMNS if c not in ("section", "kind")]


def render(rows: list[dict], title: str) -> Table:
    table = Table(*(header for _, header in PRINTED), title=title)
    section = None
    for r in rows:
        if section is not None and r["section"] != section:
            table.add_section()
        section = r["section"]
        table.add_row(*(_cell(c, r[c]) for c, _ in PRINTED))
    return table


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if r[c] is None else r[c] for c, _ in COLUMNS} for r in rows)
    return out.getvalue()


def write(rows: list[dict], document: dict, stem: Path) -> tuple[Path, Path]:
    """`stem`.csv (the rows) and `stem`.json (`document`, which holds the rows and what was measured on what)."""
    for r in rows:
        if isinstance(r["rate"], float) and not math.isfinite(r["rate"]):
            raise ValueError(f"perf row {r['what']!r} has no finite rate")
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    write_text_atomically(csv_path, to_csv(rows))
    write_text_atomically(json_path, json.dumps(document, indent=1, default=str) + "\n")
    return csv_path, json_path
