"""Hours of a suite's training stages on emg2pose's training split, projected from measured step rates.

The work of a suite is counted by the planner (the stages it trains, by kind, and their epochs), never written
down here; each stage kind is timed at the rate perf measured for that stage (its method's own Step). A
projection, not a measurement: it assumes every step of the schedule runs at the measured rate, data loading
keeping up.
"""

from __future__ import annotations

from collections import Counter

from bench import plugins, suites
from bench.run import planner

TRAIN_HOURS = 250.9        # emg2pose's training split, hours of recordings (emg2pose, Table 1)
PAPER_V100_HOURS = 18.0    # CPEP: about 4.5 h on 4 x V100 per model
NOTE = ("projection from measured step rates on this device, not a measured run: every step of the schedule at "
        "the rate measured here, data loading keeping up")


def windows_per_epoch(window: int, sample_rate: float, hours: float = TRAIN_HOURS) -> int:
    """Non-overlapping windows of `window` samples in `hours` of recordings."""
    return int(hours * 3600 * sample_rate // window)


def work(runs: list[planner.Run]) -> dict[str, tuple[int, int]]:
    """{stage kind: (stages, epochs summed)} over the distinct training stages of the runs."""
    stages, epochs = Counter(), Counter()
    for stage in planner.unique_stages(runs):
        if stage.kind != planner.EVAL:
            stages[stage.kind] += 1
            epochs[stage.kind] += planner.epochs(stage)
    return {kind: (stages[kind], epochs[kind]) for kind in stages}


def suite_work(name: str) -> dict[str, dict[str, tuple[int, int]]]:
    """The work of one CPEP model of the suite (its first seed) and of the whole suite, as the planner plans it."""
    suite = suites.load(name)
    runs = planner.plan(suite)
    scopes = {}
    cpep = [r for r in runs if r.variant.method == "cpep"]
    if cpep:
        scopes["one CPEP model"] = work(cpep[:1])
    scopes[f"whole {suite.name} suite"] = work(runs)
    return scopes


def project(kinds: dict[str, tuple[int, int]], rates: dict[str, float], windows: int) -> dict:
    """Hours of `kinds` ({kind: (stages, epochs)}) at `rates` ({stage kind: windows/s}), `windows` per epoch."""
    hours, missing = {}, []
    for kind, (_, epochs) in kinds.items():
        if rates.get(kind):
            hours[kind] = epochs * windows / rates[kind] / 3600
        else:
            missing.append(kind)
    steps = sum(epochs for kind, (_, epochs) in kinds.items() if kind in hours) * windows
    return {"stages": ", ".join(f"{n} {kind} ({epochs} epochs)" for kind, (n, epochs) in kinds.items()),
            "window_steps": steps, "hours": sum(hours.values()), "hours_by_kind": hours, "not_projected": missing}


COMPILED = "_compiled"


def rates_of(rows: list[dict], model: str, same_as: dict | None = None, compiled: bool = False) -> dict[str, float]:
    """{stage kind: windows/s} at one model size: its own row, or the row of the size whose configuration that
    stage shares (`same_as`: {"kind@model": model}); with `compiled`, the compiled steps' rates where measured."""
    same_as = same_as or {}
    rates = {}
    for r in rows:
        stage = r["kind"].removesuffix(COMPILED).removesuffix("_uncached") if r["kind"] else ""
        if r["section"] == "step" and r["model"] == same_as.get(f"{stage}@{model}", model):
            rates[r["kind"]] = r["rate"]
    if compiled:
        rates.update({kind.removesuffix(COMPILED): rate for kind, rate in rates.items() if kind.endswith(COMPILED)})
    return rates


def projections(rows: list[dict], suite: str, scopes: dict, window: int, models: list[str],
                same_as: dict | None = None) -> dict:
    """Each scope of `suite_work` at each paper model size's measured rates."""
    windows = windows_per_epoch(window, plugins.get("dataset", "emg2pose").sample_rate)
    out = []
    compiled = [False] + [True] * any(r["kind"].endswith(COMPILED) for r in rows if r["kind"])
    for scope, kinds in scopes.items():
        for model in models:
            for c in compiled:
                size = next(r["size"] for r in rows if r["model"] == model and r["section"] == "step")
                p = project(kinds, rates_of(rows, model, same_as, c), windows)
                paper = f"{PAPER_V100_HOURS:g} V100-hours (4.5 h on 4 x V100)" if scope == "one CPEP model" else ""
                out.append({"scope": scope, "model": model, "size": size + (", compiled" if c else ""), **p,
                            "paper": paper})
    return {"suite": suite, "note": NOTE, "train_hours": TRAIN_HOURS, "windows_per_epoch": windows,
            "paper_v100_hours_per_model": PAPER_V100_HOURS, "rows": out}
