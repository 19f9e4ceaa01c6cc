"""The rows of `cpep-bench perf`: one printed table (80 columns wide, or every column with --wide), footnotes
wrapped to the same width, and the same rows as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from pathlib import Path

from rich import box
from rich.table import Table

from cpep.files import write_text_atomically

# (column, header) in table order; a row leaves out what does not apply to it. `section`, `kind` (the stage a step
# row times), `method` and `work` (what sets its speed: bench.perf.steps.work_key) are in the files only.
COLUMNS = (
    ("section", "section"), ("kind", "kind"), ("what", "what"), ("model", "model"), ("size", "size"),
    ("batch", "batch"), ("rate", "rate"), ("unit", "unit"), ("units_per_repeat", "units"), ("repeats", "reps"),
    ("gflop", "GFLOP each"), ("tflop_per_s", "TFLOP/s"), ("of_roofline", "of roofline"),
    ("peak_memory_mb", "peak MB"), ("vs_reference", "vs ref"), ("method", "method"), ("work", "work"),
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


WIDE = [(c, header) for c, header in COLUMNS if c not in ("section", "kind", "method", "work")]
WIDTH = 80  # the default table's width at most, footnotes included
UNITS = {"windows/s": "win/s", "queries/s": "q/s", "TFLOP/s": "TFLOP/s"}


def _si(value: float) -> str:
    """Three significant digits and a k/M/G suffix: 12.3 k, 456, 0.112."""
    for factor, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _share(r: dict) -> str:
    """The row's fraction of its reference: the roofline's FLOP/s for rows that count FLOPs, else `vs_reference`."""
    value = r["of_roofline"] if r["of_roofline"] is not None else r["vs_reference"]
    return "" if value is None else f"{100 * value:.3g} %"


def _size(r: dict) -> str:
    if r["section"] == "data":
        return f"{r['batch']} win"
    return r["size"] or ""


def _narrow(r: dict) -> list[str]:
    peak = r["peak_memory_mb"]
    return [r["what"], _size(r), f"{_si(r['rate'])} {UNITS.get(r['unit'], r['unit'])}", _share(r),
            "" if peak is None else f"{peak:,.0f}"]


NARROW = ("what", "size", "rate", "vs ref", "peak MB")
NARROW_NOTE = ("vs ref: a step's or zero-shot's FLOP/s as a fraction of the GEMM row's (the roofline); a data path "
               "as a fraction of the memory copy; a contention row as a fraction of the rate as found. --wide shows "
               "every column (batch, units and repeats timed, FLOPs)")


WIDE_NOTE = ("of roofline: a step's or zero-shot's TFLOP/s as a fraction of the GEMM row's; vs ref: a data path as "
             "a fraction of the memory copy, a contention row as a fraction of the rate as found; units: units of "
             "work per timed repeat; reps: repeats")


def render(rows: list[dict], wide: bool = False) -> Table:
    """The table, each section apart. The default one is at most WIDTH characters wide for the rows perf writes."""
    headers = [header for _, header in WIDE] if wide else NARROW
    table = Table(*headers, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, header in enumerate(headers):
        if i:
            table.columns[i].justify = "right"
    section = None
    for r in rows:
        if section is not None and r["section"] != section:
            table.add_section()
        section = r["section"]
        table.add_row(*([_cell(c, r[c]) for c, _ in WIDE] if wide else _narrow(r)))
    return table


def footnotes(notes: list[str], width: int = WIDTH) -> str:
    """Each note once, wrapped to `width` with a hanging indent."""
    return "\n".join(textwrap.fill(note, width, initial_indent="  ", subsequent_indent="    ")
                     for note in dict.fromkeys(notes))


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
