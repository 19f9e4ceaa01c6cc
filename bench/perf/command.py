"""`cpep-bench perf`: measure, print the table (and the projection), write CSV and JSON."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import plugins
from bench.perf import files, measure, projection, steps, table
from bench.run.provenance import collect
from bench.run.store import Store
from cpep.nn.train import pick_device
from cpep.threads import use_threads

# --quick reads a small synthetic dataset (tens of MB) unless the data is set on the command line.
QUICK_DATA = {"data.synth.users": 4, "data.synth.test_users": 1, "data.synth.stage_seconds": 3.0,
              "data.synth.sessions": 1}


def notes(device_type: str, slowdown: float, threads: int, busy: str, wide: bool) -> list[str]:
    memory = ("CUDA: torch.cuda.max_memory_allocated during the row" if device_type == "cuda" else
              "CPU: how much the process's peak resident set size (ru_maxrss) grew during the row; a row that "
              "needs no more than an earlier one shows 0")
    return [
        "rate: median over the repeats; each repeat times one or more units of work (steps of the batch, reads "
        "of the batch, calls) after an untimed warm-up",
        "steps: each stage's own training step (its method's Step), on one batch of the stage's batch size; "
        "FLOPs of one step counted once with torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, "
        "attention; not elementwise work or the optimizer), then timed without the counter",
        "zero-shot: FLOPs are those of the similarities' float32 product; on CUDA the roofline is bf16",
        f"peak MB: {memory}",
        f"contention: {busy}'s rate {slowdown:.2f}x slower with one CPU-bound process beside it, torch using "
        f"{threads} threads",
        table.WIDE_NOTE if wide else table.NARROW_NOTE,
    ]


def show_projection(p: dict, console: Console) -> None:
    t = Table("scope", "size", "M steps", "hours", "paper", title=f"{p['suite']} on emg2pose's training split "
              f"({p['train_hours']} h, {p['windows_per_epoch']:,} windows per epoch)")
    for r in p["rows"]:
        t.add_row(r["scope"], r["size"], f"{r['window_steps'] / 1e6:.0f}", f"{r['hours']:.1f}",
                  r["paper"].split(" (")[0])
    console.print(t)
    stages = {r["stages"]: r["not_projected"] for r in p["rows"]}
    lines = [p["note"]] + [f"stages: {s}" + (f" (not projected: {', '.join(m)})" if m else "")
                           for s, m in stages.items()]
    console.print(table.footnotes(lines), highlight=False, markup=False)


def dataset_line(cfg: dict, store: Store, data) -> str:
    """Which data the rows read: the dataset, its root and its pre-training windows."""
    root = plugins.get("dataset", cfg["data"]["name"]).root(cfg, store)
    size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    return (f"data: {cfg['data']['name']} at {root} ({size / 2**20:,.0f} MB, "
            f"{len(data.selection('pretrain')):,} pre-training windows)")


def show(overrides: dict, store: Store, out: Path, repeats: int, quick: bool, project: str | None,
         methods: list[str], wide: bool, console: Console) -> dict:
    cfg = plugins.resolve(QUICK_DATA if quick else {}, overrides)
    device = pick_device(cfg["train"]["device"])
    use_threads(cfg["train"]["threads"])  # as the stages size torch's threads
    methods = methods or steps.default_methods()
    chosen = steps.sizes(cfg, {**(QUICK_DATA if quick else {}), **overrides}, quick)
    steps.validate(methods, chosen)  # bad settings or suite names stop here, before any data is made
    scopes = projection.suite_work(project) if project else None
    timed, same_as = steps.plan(methods, chosen, device)
    data = plugins.get("dataset", cfg["data"]["name"]).open(cfg, store)
    read = dataset_line(cfg, store, data)
    console.print(read, highlight=False, markup=False)

    def progress(r: dict) -> None:
        console.print(f"  measured {r['what']} ({r['size']}): {r['rate']:,.0f} {r['unit']}", highlight=False)

    with console.status("measuring"):
        document = measure.run(cfg, timed, data, device, repeats, quick, progress)
    rows = document["rows"]
    document.update(methods=methods, same_as=same_as, data=read, provenance=collect(device))
    document["notes"] = notes(device.type, document["slowdown_beside_busy_process"], document["torch_threads"],
                              document["contention_step"], wide)
    console.print(f"perf on {device} ({document['device_name']}, {document['precision']}, torch threads "
                  f"{document['torch_threads']}){', --quick' if quick else ''}", highlight=False)
    console.print(table.render(rows, wide))
    console.print(table.footnotes(document["notes"]), highlight=False, markup=False)
    if scopes is not None:
        paper = [s.role for s in chosen if s.role != "default"]
        document["projection"] = projection.projections(rows, project, scopes, cfg["data"]["window"], paper,
                                                        same_as)
        show_projection(document["projection"], console)
    document["config"] = cfg
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    csv_path, json_path = table.write(rows, document, out / files.name(device, document["device_name"], stamp))
    console.print(f"wrote {csv_path}\nwrote {json_path}", highlight=False)
    return document
