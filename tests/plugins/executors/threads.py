"""An executor from a plug-in folder: a pool of threads computes the independent stages of one level of the stage
graph side by side, each stage in a child Python process of its own (torch's random state is per process, so
stages that share it would not compute as they do alone), then the next level; the records are written here.

It uses only what an executor plug-in is given: bench.plugins.Executor, the stage graph (bench.run.planner) and
bench.run.runner; `status` and `cancel` work through the base class (a sweep computed inside the `run` process).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from bench import plugins
from bench.run import runner
from bench.run.planner import levels, unique_stages

COMPUTE = ("import pickle, sys; from bench.run import runner; from bench.run.store import Store; "
           "stage = pickle.load(open(sys.argv[1], 'rb'));\n"
           "try: runner.ensure_stage(stage, Store(sys.argv[2]))\n"
           "except runner.StageFailed: sys.exit(1)")


def compute(stage, root: str) -> None:
    """The stage in a child process; its failure, if any, is in the runs directory (failed.json)."""
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as f:
        pickle.dump(stage, f)
    try:
        subprocess.run([sys.executable, "-c", COMPUTE, f.name, root])
    finally:
        os.unlink(f.name)


class Executor(plugins.Executor):
    takes = ("jobs",)

    def parallel(self) -> int:
        return (self.options or {}).get("jobs", 2)

    def execute(self, runs, store, console, fail_fast):
        with ThreadPoolExecutor(self.parallel()) as pool:
            for level in levels([s for s in unique_stages(runs) if not store.stage_done(s)]):
                list(pool.map(lambda stage: compute(stage, str(store.root)), level))
        records = [runner.complete(run, store) for run in runs]  # every stage has ended: this writes the records
        for rec in records:
            console.print(f"{rec['variant']}/seed-{rec['seed']}: {rec['status']}")
        return records
