"""`cpep-bench run --plan`: a quote before a sweep. The stages a suite's selection needs, which the runs directory holds
already (reused) and which are to compute, and the hours the training stages will take on a device, estimated from
the latest `cpep-bench perf` file for that device (bench.perf.files) at the rate perf measured for the same stage
configuration (bench.perf.steps.work_key).

An estimate: epochs x windows per epoch / the measured windows/s, data loading keeping up; evaluations are listed
but not quoted (perf does not time them).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bench import plugins
from bench.perf import files, steps, table
from bench.run import planner
from bench.run.executor import Executor


class OnGpu(Executor):
    """Plans every stage as computed on a GPU (bf16), where this machine has none: a quote for a GPU."""
    name = "quote"

    def gpus(self, kind: str) -> bool:
        return True


APPROXIMATE = "~"  # a rate perf measured for another configuration of the same stage


def rates(document: dict) -> tuple[dict[str, float], dict[str, float]]:
    """({work key: windows/s}, {stage kind: windows/s of the default model}) of a perf document's eager steps."""
    exact, by_kind = {}, {}
    for r in document["rows"]:
        if r["section"] == "step" and r.get("work") and not r["kind"].endswith(("_compiled", "_uncached")):
            exact.setdefault(r["work"], r["rate"])
            if r["model"] == "default":
                by_kind.setdefault(r["kind"], r["rate"])
    return exact, by_kind


def windows_per_epoch(stage: planner.Stage, data) -> int:
    """The pre-training windows a stage's epoch reads: its selection's, times data.fraction where it reads one."""
    n = len(data.selection("pretrain"))
    if "data.fraction" in planner.step_of(stage).keys:
        n = max(1, round(stage.config["data"]["fraction"] * n))
    return n


def estimate(runs: list[planner.Run], store, document: dict | None, open_data) -> list[dict]:
    """One row per distinct stage: its kind, key, first run, whether it is reused, and its estimated hours (None
    for an evaluation, or without a rate)."""
    exact, by_kind = rates(document) if document else ({}, {})
    first_run = {}
    for run in runs:
        for stage in run.stages:
            first_run.setdefault(stage.name, run.ident)
    out, windows = [], {}
    for stage in planner.unique_stages(runs):
        row = {"kind": stage.kind, "key": stage.key, "run": first_run[stage.name], "reuse": store.stage_done(stage),
               "epochs": planner.epochs(stage), "hours": None, "rate": None, "approximate": False}
        if stage.kind != planner.EVAL and document is not None:
            rate = exact.get(steps.work_key(stage.kind, stage.config))
            row["approximate"] = rate is None and stage.kind in by_kind
            rate = rate or by_kind.get(stage.kind)
            if rate:
                data_id = _data_id(stage.plan)
                if data_id not in windows:
                    windows[data_id] = open_data(stage.plan)
                row.update(rate=rate, hours=row["epochs"] * windows_per_epoch(stage, windows[data_id]) / rate / 3600)
        out.append(row)
    return out


def _data_id(cfg: dict) -> str:
    """The data a stage reads, but for the synthetic data's seed: runs whose seeds draw other users of the same
    settings have as many windows, near enough, and their data need not be made to count them."""
    data = {**cfg["data"], "synth": {k: v for k, v in cfg["data"].get("synth", {}).items() if k != "seed"}}
    return json.dumps(data, sort_keys=True, default=str)


def _hours(value: float | None, approximate: bool = False) -> str:
    if value is None:
        return "-"
    return (APPROXIMATE if approximate else "") + (f"{value:.3g}" if value >= 0.01 else f"{value * 3600:.2g} s")


def render_stages(rows: list[dict]) -> Table:
    t = Table("stage", "first run", "state", "epochs", "hours", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for r in rows:
        t.add_row(f"{r['kind']}-{r['key'][:8]}", r["run"], "reuse" if r["reuse"] else "compute", str(r["epochs"]),
                  "-" if r["reuse"] else _hours(r["hours"], r["approximate"]))
    return t


def render_kinds(rows: list[dict], device: str) -> Table:
    """By stage kind: stages to compute and to reuse, and the hours of those to compute."""
    compute, reuse, hours, approximate, missing = Counter(), Counter(), Counter(), set(), set()
    for r in rows:
        (reuse if r["reuse"] else compute)[r["kind"]] += 1
        if not r["reuse"]:
            if r["hours"] is None:
                missing.add(r["kind"])
            else:
                hours[r["kind"]] += r["hours"]
            if r["approximate"]:
                approximate.add(r["kind"])
    t = Table("kind", "compute", "reuse", f"hours on {device}", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for kind in kinds:
        shown = "-" if kind in missing and not hours[kind] else _hours(hours[kind], kind in approximate)
        t.add_row(kind, str(compute[kind]), str(reuse[kind]), shown + ("+" if kind in missing and hours[kind] else ""))
    total = sum(hours.values())
    t.add_section()
    t.add_row("total", str(sum(compute.values())), str(sum(reuse.values())),
              _hours(total, bool(approximate)) + (" + not quoted" if missing else ""))
    return t


def perf_file(chosen: Path | None, store, device_type: str) -> Path | None:
    return chosen or files.latest(store.root / "perf", device_type)


def show(runs: list[planner.Run], store, device_type: str, chosen: Path | None, console: Console) -> list[dict]:
    path = perf_file(chosen, store, device_type)
    document = json.loads(path.read_text()) if path else None

    def open_data(cfg: dict):
        return plugins.get("dataset", cfg["data"]["name"]).open(cfg, store)

    rows = estimate(runs, store, document, open_data)
    console.print(render_stages(rows))
    console.print(render_kinds(rows, device_type))
    notes = ["hours: epochs x the stage's pre-training windows / the windows/s perf measured for the same stage "
             "configuration, on one device, data loading keeping up; evaluations (and stages perf did not time) "
             "are not quoted; stages that run side by side (SLURM arrays) add device-hours, not wall time"]
    if any(r["approximate"] and not r["reuse"] for r in rows):
        notes.append(f"{APPROXIMATE}: perf timed another configuration of that stage (the default model of its "
                     "run); run `cpep-bench perf` with the suite's settings (--set) for a closer quote")
    if document:
        notes.append(f"rates from {path} ({document.get('device_name', '?')}, {document['precision']}, torch threads "
                     f"{document['torch_threads']}{', --quick: rates of tiny runs' if document.get('quick') else ''})")
    else:
        notes.append(f"no perf file for {device_type} in {store.root / 'perf'}: run `cpep-bench perf --device "
                     f"{device_type} --runs-dir {store.root}` on that device (or copy its perf-{device_type}-*.json "
                     "there), or give one with --perf FILE")
    console.print(table.footnotes(notes), highlight=False, markup=False)
    return rows
