"""`cpep-bench perf`: measure, print the table (and the projection), write CSV and JSON."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import plugins
from bench.perf import measure, projection, steps, table
from bench.run.store import Store
from cpep.nn.train import pick_device
from cpep.threads import use_threads


def notes(device_type: str, slowdown: float, threads: int) -> list[str]:
    memory = ("CUDA: torch.cuda.max_memory_allocated during the row" if device_type == "cuda" else
              "CPU: how much the process's peak resident set size (ru_maxrss) grew during the row; a row that "
              "needs no more than an earlier one shows 0 (torch's CPU allocations are not traced one by one)")
    return [
        "rate: median over the repeats ('reps'); each repeat times 'units' units of work (steps of the batch, "
        "reads of the batch, matmuls) after an untimed warm-up",
        "GFLOP each: one step counted once with torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, "
        "attention; elementwise work and the optimizer are not counted), then timed without the counter; "
        "TFLOP/s = counted FLOPs x steps/s; of roofline = TFLOP/s / the GEMM row's",
        f"peak memory: {memory}",
        "vs reference: data paths as a fraction of the memory copy; the contention rows as a fraction of the "
        f"rate as found: slowdown {slowdown:.2f}x with one CPU-bound process beside the step, "
        f"torch using {threads} threads",
    ]


def show_projection(p: dict, console: Console) -> None:
    t = Table("scope", "model", "size", "stages", "window-steps (M)", "hours here", "paper",
              title=f"{p['suite']} on emg2pose's training split ({p['train_hours']} h, {p['windows_per_epoch']:,} "
                    f"windows per epoch)")
    for r in p["rows"]:
        missing = f" (not projected: {', '.join(r['not_projected'])})" if r["not_projected"] else ""
        t.add_row(r["scope"], r["model"], r["size"], r["stages"] + missing, f"{r['window_steps'] / 1e6:.0f}",
                  f"{r['hours']:.1f}", r["paper"])
    console.print(t)
    console.print(p["note"], highlight=False)


def show(overrides: dict, store: Store, out: Path, repeats: int, quick: bool, project: str | None,
         console: Console) -> dict:
    cfg = plugins.resolve(overrides)
    device = pick_device(cfg["train"]["device"])
    use_threads(cfg["train"]["threads"])  # as the stages size torch's threads
    models = steps.models(cfg, overrides, quick)  # bad settings or suite names stop here, before any data is made
    scopes = projection.suite_work(project) if project else None
    data = plugins.get("dataset", cfg["data"]["name"]).open(cfg, store)
    def progress(r: dict) -> None:
        console.print(f"  measured {r['what']} ({r['size']}): {r['rate']:,.0f} {r['unit']}", highlight=False)

    with console.status("measuring"):
        document = measure.run(cfg, models, data, device, repeats, quick, progress)
    rows = document["rows"]
    document["notes"] = notes(device.type, document["slowdown_beside_busy_process"], document["torch_threads"])
    title = (f"perf on {device} ({document['device_name']}, {document['precision']}, torch threads "
             f"{document['torch_threads']}){', --quick' if quick else ''}")
    console.print(table.render(rows, title))
    for note in document["notes"]:
        console.print(f"  {note}", highlight=False)
    if scopes is not None:
        paper = [m.role for m in models if m.role != "default"]
        document["projection"] = projection.projections(rows, project, scopes, cfg["data"]["window"], paper)
        show_projection(document["projection"], console)
    document["config"] = cfg
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    csv_path, json_path = table.write(rows, document, out / f"perf-{device.type}-{stamp}")
    console.print(f"wrote {csv_path}\nwrote {json_path}", highlight=False)
    return document
