"""From a suite and a selection to runs, and from runs to the stages they need.

A run is one (variant, seed, data identity). Its work is a chain of stages: the training steps its method
declares, then an evaluation. A stage's key is derived, never declared: it hashes the whole configuration the stage
can see (bench.plugins.step_view and evaluation_view: what the stage's code is given, and all it can read) less the
run-only and environment keys (cpep.config), its inputs' keys, the dataset's identity, the seeds, the numeric
precision and a fingerprint of the code it runs (for an evaluation, with the content of the files its method reads:
an outside encoder's weights). Runs that share a stage (every CPEP ablation shares the Pose-MAE of a seed) share
one computation, and a change to the code recomputes it. The `config_key` hashes the same without the
code: --reuse-stale finds outputs of older code by it.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench import plugins
from bench.run.fingerprint import file_digest, fingerprint
from bench.suites import Suite, Variant
from cpep import config
from cpep.data.gestures import load_vocab

EVAL = "eval"


@dataclass(frozen=True)
class Stage:
    kind: str
    key: str
    seed: int
    method: str
    config: dict = field(compare=False, hash=False)  # what it sees (a config.View)
    inputs: tuple[tuple[str, str], ...] = ()  # (kind, key) of the stages whose outputs it reads
    config_key: str = ""
    code: str = ""
    precision: str = "float32"
    stale: bool = False  # made by older code (or from such a stage's output), reused with --reuse-stale
    plan: dict = field(default_factory=dict, compare=False, hash=False)  # the whole configuration it was planned by

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.key}"


@dataclass(frozen=True)
class Run:
    """One (variant, seed) of a suite on one data identity: the identity of the data the suite was run on (`plan`),
    whose digest `data_key` keeps the records of two data roots, or of two contents of one root, apart."""
    suite: str
    variant: Variant
    seed: int
    dataset: str
    config: dict = field(compare=False, hash=False)
    stages: tuple[Stage, ...] = ()
    data_identity: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return self.stages[-1].key

    @property
    def data_key(self) -> str:
        return config.digest(self.data_identity)[:8]

    @property
    def data_dir(self) -> str:
        """Where its records go: runs/<suite>/<data_dir>/<variant>/seed-<n>.json."""
        return f"{self.dataset}-{self.data_key}"

    @property
    def code(self) -> str:
        """A digest of the code of its stages (their fingerprints): two runs of one variant by different code
        never share a table."""
        return code_digest((s.kind, s.code) for s in self.stages)

    @property
    def ident(self) -> str:
        return f"{self.variant.name}/seed-{self.seed}"

    @property
    def stale(self) -> bool:
        return any(s.stale for s in self.stages)


def epochs(stage: Stage) -> int:
    """How many epochs the stage trains (1 for an evaluation): the length of its progress bar."""
    if stage.kind == EVAL:
        return 1
    step = step_of(stage)
    return stage.config[step.schedule]["epochs"] if step.schedule else 1


def step_of(stage: Stage) -> plugins.Step:
    for step in plugins.get("method", stage.method).steps(stage.plan):
        if step.name == stage.kind:
            return step
    raise ValueError(f"method {stage.method} has no stage {stage.kind!r}")


def seed_key(cfg: dict, seed: int, keys: tuple[str, ...]) -> int | dict:
    """The seeds a stage's key holds: the run seed, or once any seed is set the resolved seeds, so that runs that
    resolve alike share their stages. The data seed only where the stage draws windows by it (it declares
    data.fraction, and that is < 1): otherwise it chooses the dataset at most (synthetic users), whose identity the
    key holds already, and runs on data that does not follow it (emg2pose, NinaPro) share their stages instead of
    repeating them."""
    seeds = config.seeds(cfg, seed)
    if not seeds.explicit:
        return seed
    key = seeds.key()
    if "data.fraction" not in keys or cfg["data"]["fraction"] == 1.0:
        del key["data"]
    return key


def code_digest(pairs) -> str:
    """A run's code: a digest of its stages' (kind, code fingerprint) pairs, in order."""
    return config.digest([list(pair) for pair in pairs])


def run_code(method_name: str, cfg: dict) -> str:
    """The code digest the code here gives a run of this method and configuration (its record's is compared)."""
    return code_digest(codes(method_name, cfg).items())


def _stage(kind: str, method: str, seed: int, cfg: dict, visible: config.View, inputs: list[Stage], code: str,
           precision: str, extra: dict | None = None, keys: tuple[str, ...] = ()) -> Stage:
    dataset = plugins.get("dataset", cfg["data"]["name"])
    ident = {"kind": kind, "seed": seed_key(cfg, seed, keys), "data": dataset.identity(cfg),
             "precision": precision, "config": config.key_config(visible), **(extra or {})}
    config_key = config.digest({**ident, "inputs": [(s.kind, s.config_key) for s in inputs]})
    key = config.digest({**ident, "inputs": [(s.kind, s.key) for s in inputs], "code": code})
    return Stage(kind, key, seed, method, visible, tuple((s.kind, s.key) for s in inputs), config_key, code,
                 precision, stale=any(s.stale for s in inputs), plan=cfg)


def code_files(cfg: dict, files: list) -> list:
    """The files whose code (with what they import) a stage's key covers: its own, and the dataset plug-in's, which
    reads the windows every stage sees."""
    return list(files) + [plugins.path("dataset", cfg["data"]["name"])]


def codes(method_name: str, cfg: dict) -> dict[str, str]:
    """The code fingerprint of each stage of a method's runs (training steps by name, then `eval`), as the code
    here computes them: what a record's stages are compared with to tell it is stale."""
    method = plugins.get("method", method_name)
    found = {step.name: fingerprint(code_files(cfg, [inspect.getfile(step.function)] +
                                               [plugins.path(kind, config.get(cfg, key)) for kind, key in step.uses]))
             for step in method.steps(cfg)}
    evaluation_files = [Path(__file__).with_name("evaluation.py"), plugins.path("method", method_name)]
    found[EVAL] = fingerprint(code_files(cfg, evaluation_files + [plugins.path("metric", m)
                                                                  for m in cfg["eval"]["metrics"]] +
                                         [plugins.path(kind, config.get(cfg, key)) for kind, key in method.uses]))
    read = method.files_read(cfg)
    if read:  # an encoder's weights are part of what the evaluation runs
        found[EVAL] = config.digest([found[EVAL], {name: file_digest(path) for name, path in read.items()}])[:16]
    return found


def stages_for(method_name: str, seed: int, cfg: dict, precision: str | Callable[[str], str],
               reuse: Callable[[Stage], Stage | None] | None = None) -> tuple[Stage, ...]:
    """The method's training stages in order, then its evaluation. `reuse` may swap a stage for an older one.
    `precision`: of every stage, or a function of the stage kind (an executor may compute kinds on other devices)."""
    at = precision if callable(precision) else (lambda kind: precision)
    method = plugins.get("method", method_name)
    code = codes(method_name, cfg)
    made: dict[str, Stage] = {}
    for step in method.steps(cfg):
        stage = _stage(step.name, method_name, seed, cfg, plugins.step_view(step, cfg),
                       [made[i] for i in step.inputs], code[step.name], at(step.name), keys=step.keys)
        made[step.name] = (reuse and reuse(stage)) or stage
    vocab = load_vocab(cfg["data"]["vocab"])
    extra = {"method": method_name, "vocab": {"in_distribution": vocab.in_distribution, "unseen": vocab.unseen}}
    evaluation = _stage(EVAL, method_name, seed, cfg, plugins.evaluation_view(method, cfg), list(made.values()),
                        code[EVAL], at(EVAL), extra)
    return tuple(made.values()) + ((reuse and reuse(evaluation)) or evaluation,)


def plan(suite: Suite, seeds: tuple[int, ...] | None = None, variants: list[str] | None = None,
         overrides: dict | None = None, precision: str | Callable[[str], str] = "float32",
         reuse: Callable[[Stage], Stage | None] | None = None) -> list[Run]:
    """The runs of a suite: selected variants x seeds, with command-line overrides applied last. Every
    configuration is checked (shared, dataset and method rules) before any run is returned."""
    chosen = [suite.variant(n) for n in variants] if variants else list(suite.variants)
    # The data the suite was run on, before a variant's own settings (cross_user's levels of user variability are
    # part of the suite, not another dataset): what its records are filed under.
    identity = data_identity(plugins.resolve(suite.overrides, overrides or {}))
    runs = []
    for variant in chosen:
        cfg = plugins.resolve(suite.overrides, variant.overrides, overrides or {})
        plugins.get("method", variant.method).validate(cfg)
        dataset = plugins.get("dataset", cfg["data"]["name"])
        for seed in seeds if seeds is not None else suite.seeds:
            # before the stages are keyed: their keys cover the data, which follows the data seed
            run_cfg = dataset.for_seed(cfg, config.seeds(cfg, seed).data)
            runs.append(Run(suite.name, variant, seed, run_cfg["data"]["name"], run_cfg,
                            stages_for(variant.method, seed, run_cfg, precision, reuse), identity))
    return runs


def data_identity(cfg: dict) -> dict:
    """The dataset's identity (its content, reader protocol and windows; for synthetic data drawn per seed, before
    the seed's draw) and the gesture vocabulary. A copy of the same data elsewhere is the same identity; the
    records say where each run read it."""
    ident = plugins.get("dataset", cfg["data"]["name"]).identity(cfg)
    return {**ident, "vocab": cfg["data"]["vocab"]}


def unique_stages(runs: list[Run]) -> list[Stage]:
    """Every stage the runs need, once, each after its inputs."""
    seen: dict[str, Stage] = {}
    for run in runs:
        for stage in run.stages:
            seen.setdefault(stage.name, stage)
    return list(seen.values())


def levels(stages: list[Stage]) -> list[list[Stage]]:
    """Stages (each after its inputs, as unique_stages lists them) by depth in the stage graph: those whose inputs
    are not among them first, then those that read only those, and so on. The stages of one level are independent."""
    depth: dict[str, int] = {}
    for stage in stages:
        depth[stage.name] = 1 + max((depth.get(f"{k}-{key}", -1) for k, key in stage.inputs), default=-1)
    found: list[list[Stage]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for stage in stages:
        found[depth[stage.name]].append(stage)
    return found


def stale_reuse(store) -> Callable[[Stage], Stage | None]:
    """For --reuse-stale: a stage not done with the current code is swapped for a finished one of the same
    configuration made by older code, when the runs directory has one."""
    def reuse(stage: Stage) -> Stage | None:
        if store.stage_done(stage):
            return None
        older = store.find_by_config_key(stage.kind, stage.config_key)
        return dataclasses.replace(stage, key=older, stale=True) if older else None
    return reuse
