"""`cpep-bench perf --scale`: the scale rehearsal. emg2pose-shaped recordings are written at growing sizes with
the simulator, and every phase a real run goes through is timed on them (bench.perf.scale_phases, one process per
size). Each phase's growth is fitted (least squares of log time over log size) and projected to emg2pose's full
size, beside the measured rows; the disk's write speed is measured in the same run, for the window cache's.

Each size is written into a temporary folder under the runs directory and removed once measured; a size is only
started when the disk has room for it (its recordings and window cache, estimated from the schema) and a reserve.

Batches and embeddings are gathered from the memory-mapped window cache at every size, as at emg2pose's size, where
no selection fits in data.in_memory_gb: a rehearsal that copied its small selections to memory would measure a path
the full-size run never takes (`--set data.in_memory_gb=...` measures that one).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.perf import table
from bench.run.provenance import collect
from cpep.data import schema
from cpep.errors import UserError
from cpep.files import write_text_atomically

# emg2pose at full size (research/emg2pose_cpep.md): hours of all its recordings and of its training split, bytes.
FULL_HOURS = {"recordings": 370.3, "pretrain": 250.9}
FULL_BYTES = 431 * 2**30
# The phases, in order: (name, what their size is measured in, target exponent at most)
PHASES = (
    ("generate", "recordings", None),
    ("data check", "recordings", 1.1),
    ("window cache", "recordings", 1.1),
    ("epoch, data path", "pretrain", 1.1),
    ("epoch, default model", "pretrain", 1.1),
    ("embed", "recordings", 1.1),
    ("linear probe", "recordings", 1.1),
    ("zero-shot", "recordings", 1.1),
)
BYTES_PER_HOUR = schema.TIMESERIES_DTYPE.itemsize * 2000 * 3600  # the recordings, as HDF5 holds them
CACHE_SHARE = 0.25  # the window cache's bytes per byte of recordings, with room to spare (0.13 measured)
RESERVE = 2 * 2**30  # left free on the disk for everything else
DISK_TEST_BYTES = 256 * 2**20


def parse_hours(text: str) -> list[float]:
    try:
        hours = [float(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise UserError(f"--hours takes hours of recordings separated by commas, e.g. 1,2,4,8, not {text!r}")
    if not hours or any(not math.isfinite(h) or h <= 0 for h in hours):
        raise UserError(f"--hours takes positive hours of recordings, not {text!r}")
    return sorted(set(hours))


def needed_bytes(hours: float) -> int:
    return int(hours * BYTES_PER_HOUR * (1 + CACHE_SHARE))


def disk_write_speed(folder: Path, nbytes: int = DISK_TEST_BYTES) -> float:
    """Bytes/s of a file written in 8 MiB blocks and synced to the disk, in `folder`."""
    block = os.urandom(8 * 2**20)
    path = folder / "disk-write-test"
    began = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(nbytes // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    took = time.perf_counter() - began
    path.unlink()
    return nbytes / took


def _worker(hours: float, overrides: dict, scratch: str, queue) -> None:
    try:
        from bench.perf.scale_phases import measure_size
        queue.put(("done", measure_size(hours, overrides, scratch, lambda phase: queue.put(("phase", phase)))))
    except BaseException as e:  # the parent says what went wrong, in one line
        queue.put(("error", f"{type(e).__name__}: {e}"))


def measure(hours: float, overrides: dict, scratch: Path, progress) -> dict:
    """One size, measured in a process of its own."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_worker, args=(hours, overrides, str(scratch), queue))  # it starts writers
    process.start()
    try:
        while True:
            try:
                kind, value = queue.get(timeout=5)
            except Exception:  # queue.Empty: is the worker still there?
                if not process.is_alive():
                    raise UserError(f"the scale rehearsal's process for {hours:g} h ended without a result "
                                    f"(exit code {process.exitcode}; out of memory?)")
                continue
            if kind == "phase":
                progress(value)
            elif kind == "error":
                raise UserError(f"the scale rehearsal failed at {hours:g} h: {value}")
            else:
                return value
    finally:
        process.join(30)
        if process.is_alive():
            process.terminate()


def fit(x: list[float], y: list[float]) -> tuple[float, float] | None:
    """(exponent, log intercept) of y = e^b x^a by least squares on logs; None without two positive points."""
    points = [(a, b) for a, b in zip(x, y) if a > 0 and b > 0]
    if len(points) < 2 or len({a for a, _ in points}) < 2:
        return None
    a, b = np.polyfit(np.log([p[0] for p in points]), np.log([p[1] for p in points]), 1)
    return float(a), float(b)


def growth(sizes: list[dict]) -> list[dict]:
    """Per phase (and for the bytes on disk and the peak memory): the fitted exponent and the value projected to
    emg2pose's full size."""
    rows = []

    def add(what: str, axis: str, values: list[float], unit: str, target: float | None):
        x = [s["recorded_hours" if axis == "recordings" else "pretrain_hours"] for s in sizes]
        f = fit(x, values)
        projected = math.exp(f[1]) * FULL_HOURS[axis] ** f[0] if f else None
        met = None if f is None or target is None else f[0] <= target
        last = fit(x[-2:], values[-2:])
        rows.append({"what": what, "axis": axis, "unit": unit, "measured": values, "exponent": f and f[0],
                     "last_exponent": last and last[0],
                     "full_hours": FULL_HOURS[axis], "projected": projected, "target_exponent": target,
                     "met": met})

    for name, axis, target in PHASES:
        add(name, axis, [s["phases"][name]["seconds"] for s in sizes], "s", target)
    add("recordings on disk", "recordings", [s["data_bytes"] / 2**30 for s in sizes], "GiB", 1.1)
    add("window cache on disk", "recordings", [s["cache_bytes"] / 2**30 for s in sizes], "GiB", 1.1)
    add("peak memory, own (anonymous)", "recordings",
        [max(p.get("anon_mb", 0) for p in s["phases"].values()) for s in sizes], "MB", 0.1)
    add("peak memory, mapped files", "recordings",
        [max(p.get("file_mb", 0) for p in s["phases"].values()) for s in sizes], "MB", None)
    return rows


def _number(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s" and value >= 3600:
        return f"{value / 3600:.3g} h"
    return f"{value:.3g}" + (f" {unit}" if unit else "")


def _peak_mb(size: dict, kind: str) -> float:
    return max(p.get(kind, 0) for p in size["phases"].values())


def measured_rows(sizes: list[dict]) -> list[list[str]]:
    """Per phase its seconds at each size, then the bytes on disk and the peak memory at each size."""
    rows = [[name] + [_number(s["phases"][name]["seconds"], "s") for s in sizes] for name, _, _ in PHASES]
    rows.append(["recordings, GiB"] + [f"{s['data_bytes'] / 2**30:.3g}" for s in sizes])
    rows.append(["window cache, GiB"] + [f"{s['cache_bytes'] / 2**30:.3g}" for s in sizes])
    rows.append(["peak own memory, MB"] + [f"{_peak_mb(s, 'anon_mb'):,.0f}" for s in sizes])
    rows.append(["peak mapped files, MB"] + [f"{_peak_mb(s, 'file_mb'):,.0f}" for s in sizes])
    return rows


def render_measured(sizes: list[dict]) -> Table:
    t = Table("measured at", *(f"{s['recorded_hours']:.3g} h" for s in sizes), box=box.SIMPLE_HEAD,
              show_edge=False, pad_edge=False)
    for row in measured_rows(sizes):
        t.add_row(*row)
    return t


def _target(r: dict) -> str:
    if r["target_exponent"] is None:
        return ""
    return f"<={r['target_exponent']:g} {'met' if r['met'] else 'missed'}"


def render_growth(rows: list[dict]) -> Table:
    t = Table("what", "exponent", "last", "at full size", "target", box=box.SIMPLE_HEAD, show_edge=False,
              pad_edge=False)
    for r in rows:
        t.add_row(r["what"], _number(r["exponent"]), _number(r["last_exponent"]), _number(r["projected"], r["unit"]),
                  _target(r))
    return t


def markdown(document: dict) -> str:
    """The measured and projected tables as Markdown, for docs/performance.md."""
    sizes, rows = document["sizes"], document["growth"]
    lines = ["| measured at | " + " | ".join(f"{s['recorded_hours']:.3g} h" for s in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in measured_rows(sizes)]
    lines += ["", "| what | exponent | last | projected to emg2pose | target |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {_number(r['exponent'])} | {_number(r['last_exponent'])} | "
                     f"{_number(r['projected'], r['unit'])} ({r['full_hours']} h) | {_target(r)} |")
    return "\n".join(lines) + "\n"


def write(document: dict, stem: Path) -> list[Path]:
    """`stem`.json (everything, with provenance), .csv (per size and phase) and .md (the tables)."""
    lines = ["hours,recorded_hours,phase,seconds,anon_mb,file_mb"]
    for s in document["sizes"]:
        for name, p in s["phases"].items():
            lines.append(f"{s['hours']},{s['recorded_hours']:.4f},{name},{p['seconds']:.4f},"
                         f"{p.get('anon_mb', 0):.1f},{p.get('file_mb', 0):.1f}")
    paths = [stem.with_suffix(".json"), stem.with_suffix(".csv"), stem.with_suffix(".md")]
    write_text_atomically(paths[0], json.dumps(document, indent=1, default=str) + "\n")
    write_text_atomically(paths[1], "\n".join(lines) + "\n")
    write_text_atomically(paths[2], markdown(document))
    return paths


def rehearse(overrides: dict, store, out: Path, hours_text: str, console: Console) -> dict:
    """Measure every size that fits on the disk, fit, project, print and write."""
    from bench import plugins
    from cpep.nn.train import pick_device
    hours = parse_hours(hours_text)
    overrides = {"data.in_memory_gb": 0, **overrides}
    cfg = plugins.resolve(overrides)  # bad settings stop here, before any data is written
    if cfg["data"]["name"] != "synthetic":
        raise UserError("the scale rehearsal writes its own synthetic data: leave data.name as it is")
    store.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store.root).free
    if needed_bytes(hours[0]) + RESERVE > free:
        raise UserError(f"{hours[0]:g} h of recordings need about {needed_bytes(hours[0]) / 2**30:.1f} GiB on "
                        f"{store.root}'s disk and {RESERVE / 2**30:.0f} GiB to spare; {free / 2**30:.1f} GiB are free")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="scale-", dir=store.root))
    sizes, stopped = [], None
    try:
        write_speed = disk_write_speed(scratch)
        with Progress(console=console) as progress:
            for h in hours:
                free = shutil.disk_usage(scratch).free
                if needed_bytes(h) + RESERVE > free:
                    stopped = (f"stopped before {h:g} h: it needs about {needed_bytes(h) / 2**30:.1f} GiB and "
                               f"{RESERVE / 2**30:.0f} GiB to spare, {free / 2**30:.1f} GiB are free")
                    break
                task = progress.add_task(f"{h:g} h", total=len(PHASES))
                sizes.append(measure(h, overrides, scratch, lambda phase, task=task: progress.update(
                    task, advance=1, description=f"{h:g} h: {phase}")))
                progress.update(task, completed=len(PHASES), description=f"{h:g} h: done")
                for leftover in scratch.iterdir():
                    shutil.rmtree(leftover, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    device = pick_device(cfg["train"]["device"])
    document = {"command": "cpep-bench perf --scale --hours " + ",".join(f"{h:g}" for h in hours),
                "overrides": overrides, "stopped": stopped, "disk_write_bytes_per_s": write_speed,
                "sizes": sizes, "growth": growth(sizes), "full_size": {"hours": FULL_HOURS, "bytes": FULL_BYTES},
                "provenance": collect(device)}
    document["cache_vs_disk"] = [s["cache_bytes"] / s["phases"]["window cache"]["seconds"] / write_speed
                                 for s in sizes]
    console.print(render_measured(sizes))
    console.print(render_growth(document["growth"]))
    notes = ["exponent: of a least-squares fit of log time (or bytes, memory) over log hours of recordings; last: "
             "the same between the two largest sizes; at full size: the fit at emg2pose's size",
             f"disk write speed {write_speed / 2**20:,.0f} MiB/s (synced, measured in this run); the window cache "
             "was written at " + ", ".join(f"{100 * r:.0f} %" for r in document["cache_vs_disk"]) +
             " of it, by size",
             f"projection: each fit extrapolated to emg2pose's {FULL_HOURS['recordings']} h of recordings "
             f"({FULL_BYTES / 2**30:.0f} GiB), pre-training epochs to its {FULL_HOURS['pretrain']} h training split; "
             "zero-shot meets every reference with every query, so it grows with the product of the two"]
    if stopped:
        notes.append(stopped)
    notes += [f"{s['hours']:g} h: {problem}" for s in sizes for problem in s["problems"]]
    document["notes"] = notes
    console.print(table.footnotes(notes), highlight=False, markup=False)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for path in write(document, out / f"scale-{device.type}-{stamp}"):
        console.print(f"wrote {path}", highlight=False)
    return document
