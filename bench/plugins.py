"""Plug-ins: a method, a dataset, an objective, a metric or an executor is one file, found by listing its folder.

    bench/methods/NAME.py       class Method(plugins.Method)        stages, embeddings, its configuration sections
    bench/datasets/NAME.py      class Dataset(plugins.Dataset)      channels, pose dimensions, selections, identity
    bench/objectives/NAME.py    class Objective(plugins.Objective)  the alignment loss, chosen by align.objective
    bench/metrics/NAME.py       class Metric(plugins.Metric)        a score, or a decision per window, from embeddings
    bench/executors/NAME.py     class Executor(plugins.Executor)    where and how a sweep's stages are computed

The file's name is the plug-in's name. More folders with the same subfolders come from a suite's
`plugins = ["DIR"]` or from $CPEP_BENCH_PLUGINS (folders separated by ':'); a name may be defined once.

Every plug-in file is imported to resolve a configuration (it declares its sections), so it imports torch-heavy
code inside its functions: commands that do not train (`--help`, `suites`, `status`, `report`) never load torch.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from bench.run.executor import OPTIONS, Executor, Seen  # noqa: F401  (the executor interface, kept beside the run code)
from cpep import config
from cpep.errors import ConfigError, UserError

if TYPE_CHECKING:
    import torch

    from cpep.nn.train import Training

KINDS = {"method": "methods", "dataset": "datasets", "objective": "objectives", "metric": "metrics",
         "executor": "executors"}
BUILT_IN = Path(__file__).resolve().parent
ENV = "CPEP_BENCH_PLUGINS"


# ------------------------------------------------------------------ what a plug-in declares

@dataclass(frozen=True)
class Context:
    """What a training stage's `build` is given."""
    cfg: config.View             # the configuration the stage sees (Step: its sections and its file's own)
    data: object                 # the opened dataset: .selection(name), .channels, .pose_dims, .vocab
    seed: int
    device: "torch.device"
    inputs: dict                 # input stage name -> its model's state dict
    checkpoint: Path | None = None
    on_epoch: Callable[[int, dict], None] | None = None

    @property
    def seeds(self) -> config.RunSeeds:
        """The init, order and data seeds of the run seed `seed` (config.seeds)."""
        return config.seeds(self.cfg, self.seed)

    def section(self, cls: type[config.Section]):
        """A section of the configuration, typed."""
        return cls.of(self.cfg)


@dataclass(frozen=True)
class Step:
    """A stage a method declares. Methods that declare the same Step (by name, the configuration it sees and its
    code) share its output.

    A stage that trains by gradient gives `build(ctx)`: the cpep.nn.train.Training that the harness fits (with
    checkpoints, resuming and progress) and `cpep-bench perf` times; `schedule` names the section of its epochs,
    batch size and learning rate (a cpep.nn.config.ScheduleSection). Any other stage gives `compute(ctx)` ->
    (state dict, history: one dict per epoch).

    The stage sees, and its key hashes, the shared sections it names, the sections defined in the file of its
    function, those of the plug-ins it `uses`, the declared `keys`, and data, seeds and train; reading anything
    else is an error (config.View)."""
    name: str
    build: Callable[[Context], "Training"] | None = None
    schedule: str = ""
    compute: Callable[[Context], tuple[dict, list[dict]]] | None = None
    sections: tuple[str, ...] = ()      # shared sections it reads, beyond its file's own
    inputs: tuple[str, ...] = ()        # the steps whose models it reads
    uses: tuple[tuple[str, str], ...] = ()  # (plug-in kind, config key naming it): its code and sections count too
    keys: tuple[str, ...] = ()          # keys it sees only where it names them (config.param(declared=True))

    def __post_init__(self):
        if (self.build is None) == (self.compute is None) or (self.build is not None) != bool(self.schedule):
            raise TypeError(f"Step {self.name!r} takes either build and schedule, or compute")

    @property
    def function(self) -> Callable:
        return self.build or self.compute


@dataclass
class Embeddings:
    """A trained method's window embeddings, functions of a batch {"emg", "pose", "label"}."""
    model: "torch.nn.Module"             # moved to the device and set to eval mode before use
    lp: Callable                         # what linear probes (and other "lp" metrics) read
    zs_query: Callable | None = None     # EMG -> pose-aligned embedding (zero-shot queries)
    zs_reference: Callable | None = None  # pose -> embedding (zero-shot references)


class Method:
    """`config`: the sections it owns (typed, cpep.config.Section). `sections`: shared sections its `embeddings`
    reads; it also sees the sections defined in its own file and those of the plug-ins it `uses`."""
    name = ""
    config: tuple[type[config.Section], ...] = ()
    sections: tuple[str, ...] = ()
    uses: tuple[tuple[str, str], ...] = ()
    no_zero_shot = ""        # why it has no zero-shot embedding; "" when it has one

    def steps(self, cfg: dict) -> tuple[Step, ...]:
        raise NotImplementedError

    def embeddings(self, cfg: dict, data, models: dict[str, dict]) -> Embeddings:
        """From the trained steps' models (name -> state dict); `cfg` is the evaluation's view."""
        raise NotImplementedError

    def validate(self, cfg: dict) -> None:
        """Raise ConfigError for a configuration this method cannot train (checks across sections)."""

    def why_no_zero_shot(self, cfg: dict) -> str:
        """Why this configuration of the method has no zero-shot embedding; "" when it has one."""
        return self.no_zero_shot

    def files_read(self, cfg: dict) -> dict[str, Path]:
        """name -> file its evaluation reads beyond the configuration and its steps' outputs (an encoder's weights):
        their content joins the evaluation's code fingerprint, so a changed file is never read as the old one."""
        return {}


class Dataset:
    """A dataset: its shape (channels, pose dimensions, sample rate), default vocabulary, identity and files.

    `per_user` says whether the opened dataset tells whose each test window is (`window_groups(name)`, giving
    each window's `user`): runs on it then record per-user scores (`by_user`), from which the report draws every
    estimate (each seed's users, averaged over seeds), the IQM and P(A > B). A dataset that cannot say
    (per_user False, no `window_groups`) is still evaluated in full; its records carry no `by_user`, and the
    report's statistics are over seeds alone. `config`: its own sections (e.g. data.synth)."""
    name = ""
    config: tuple[type[config.Section], ...] = ()
    channels = 16
    pose_dims = 20
    sample_rate = 2000.0
    vocab = ""               # the gesture vocabulary used when data.vocab is ""
    selections = ("pretrain", "id_train", "id_test", "unseen_train", "unseen_test")
    per_user = False         # True: the opened dataset has window_groups (see above)

    def identity(self, cfg: dict) -> dict:
        """What makes two datasets the same: for stage keys and for which records may share a table."""
        raise NotImplementedError

    def root(self, cfg: dict, store) -> Path:
        """Where its files are (generating them first, for a synthetic dataset)."""
        raise NotImplementedError

    def open(self, cfg: dict, store):
        """The readable dataset: `.selection(name)` for each of `selections`, and, where `per_user`,
        `.window_groups(name)`: per window of a test selection, its `user` (and optionally its `generalization`)."""
        raise NotImplementedError

    def validate(self, cfg: dict) -> None:
        pass

    def for_seed(self, cfg: dict, seed: int) -> dict:
        """The configuration for data seed `seed` (seeds.data, the run seed unless set): a dataset may draw
        different data per seed."""
        return cfg


class Objective:
    """Open_clip's loss shape. `config`: its section, a cpep.nn.config.Contrastive: the temperature it starts the
    model at, and a `logit_bias` field where the model learns a bias with that start. The loss reads its section as
    `self.options`, set by `configured`."""
    name = ""
    config: tuple[type[config.Section], ...] = ()
    options = None

    def __call__(self, u, v, logit_scale, logit_bias=None):
        return self.forward(u, v, logit_scale, logit_bias)

    def configured(self, cfg: dict) -> "Objective":
        """A copy of this objective with its section of `cfg`."""
        out = copy.copy(self)
        out.options = self.config[0].of(cfg)
        return out

    def forward(self, u, v, logit_scale, logit_bias=None):
        raise NotImplementedError


class Metric:
    """Scores one class set. `needs` "lp": train and test hold the method's lp embedding of the windows; "zs":
    train holds pose references (zs_reference), test EMG queries (zs_query). `compute` returns {key: value} for
    `keys`; records name them KEY_id and KEY_unseen. A metric that samples sets `seeded`: its `compute` is then
    also given `seed=`, the run's order seed (seeds.order, the run seed unless set), so that each seed draws its own
    samples and the same seed the same. `config`: its own sections; `sections`: others it reads. An evaluation's
    key holds them only where the metric applies to the method (zero-shot's `k` does not key the floor's).

    A metric whose score is the balanced accuracy of one decision per test window defines `predict` instead of
    `compute`: the evaluation scores the decisions, over all test windows and over each held-out user's (the
    record's `by_user`)."""
    name = ""
    needs = "lp"
    keys: tuple[str, ...] = ()
    seeded = False
    config: tuple[type[config.Section], ...] = ()
    sections: tuple[str, ...] = ()

    def compute(self, train: tuple, test: tuple, num_classes: int, cfg: dict,
                device: "torch.device") -> dict[str, float]:
        """train and test are (embeddings, labels) tensors on the CPU; `device` is where the stage computes."""
        raise NotImplementedError

    def predict(self, train: tuple, test: tuple, num_classes: int, cfg: dict,
                device: "torch.device") -> dict[str, "torch.Tensor"]:
        """{key: the class decided for each test window, in the order of test's labels} for `keys`."""
        raise NotImplementedError

    @property
    def per_window(self) -> bool:
        return type(self).predict is not Metric.predict

    def applies(self, method: Method, cfg: dict) -> bool:
        return self.needs != "zs" or not method.why_no_zero_shot(cfg)


BASES = {"method": Method, "dataset": Dataset, "objective": Objective, "metric": Metric, "executor": Executor}


# ------------------------------------------------------------------ finding them

def folders() -> list[Path]:
    extra = [Path(p).expanduser().resolve() for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    return [BUILT_IN, *dict.fromkeys(extra)]


def add_folders(paths) -> None:
    """Make plug-in folders known here and to the processes started from here (SLURM jobs included)."""
    known = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    os.environ[ENV] = os.pathsep.join(dict.fromkeys(known + [str(Path(p).resolve()) for p in paths]))


def files(kind: str) -> dict[str, Path]:
    """name -> file of every plug-in of a kind."""
    found: dict[str, Path] = {}
    for folder in folders():
        for path in sorted((folder / KINDS[kind]).glob("*.py")):
            if path.name.startswith("_"):
                continue
            if path.stem in found:
                raise ConfigError(f"{kind} {path.stem!r} is defined twice: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def names(kind: str) -> list[str]:
    return sorted(files(kind))


def path(kind: str, name: str) -> Path:
    found = files(kind)
    if name not in found:
        raise ConfigError(f"unknown {kind} {name!r} ({KINDS[kind]}: {', '.join(sorted(found)) or 'none'})")
    return found[name]


def get(kind: str, name: str):
    """An instance of the named plug-in."""
    return _load(kind, name, path(kind, name))


@functools.lru_cache(maxsize=None)
def _load(kind: str, name: str, file: Path):
    if file.parent.parent == BUILT_IN:
        module = importlib.import_module(f"bench.{KINDS[kind]}.{name}")
    else:  # a user folder: its files need not be importable by name
        spec = importlib.util.spec_from_file_location(f"cpep_bench_plugins.{KINDS[kind]}.{name}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    cls = getattr(module, kind.capitalize(), None)
    if not (isinstance(cls, type) and issubclass(cls, BASES[kind])):
        raise UserError(f"{file}: a {kind} plug-in defines class {kind.capitalize()}(bench.plugins."
                        f"{kind.capitalize()})")
    plugin = cls()
    plugin.name = name
    return plugin


# ------------------------------------------------------------------ configuration with the plug-ins' sections

def sections() -> dict[str, type[config.Section]]:
    """Every configuration section: the shared ones and every plug-in's, by their place in the tree."""
    return _sections(tuple(folders()))


@functools.lru_cache(maxsize=None)
def _sections(_folders: tuple[Path, ...]) -> dict[str, type[config.Section]]:
    found: dict[str, type[config.Section]] = {cls.section: cls for cls in config.CORE}
    for kind in KINDS:
        for name in names(kind):
            for cls in get(kind, name).config:
                if found.setdefault(cls.section, cls) is not cls:
                    raise ConfigError(f"configuration section {cls.section!r} is defined twice: by "
                                      f"{found[cls.section].__module__} and by {kind} {name}")
    return found


def defaults() -> dict:
    return config.tree(sections().values())


def resolve(*overrides: dict) -> dict:
    """The configuration: every section's defaults, the overrides in order, each section's checks, the dataset's
    and the metrics' names."""
    cfg = config.resolve(*overrides, sections=sections().values())
    dataset = get("dataset", cfg["data"]["name"])
    cfg["data"]["vocab"] = cfg["data"]["vocab"] or dataset.vocab
    dataset.validate(cfg)
    for metric in cfg["eval"]["metrics"]:
        path("metric", metric)
    return cfg


ALWAYS = ("data", "seeds", "train")  # what every stage sees: its data, its seeds, how it runs


def own_sections(module: str) -> tuple[str, ...]:
    """The sections defined in a module: a plug-in file's own."""
    return tuple(name for name, cls in sections().items() if cls.__module__ == module)


def used_sections(cfg: dict, uses) -> tuple[str, ...]:
    """The sections of the plug-ins named by (kind, config key) pairs."""
    return tuple(cls.section for kind, key in uses for cls in get(kind, config.get(cfg, key)).config)


def top(names) -> tuple[str, ...]:
    """The top-level sections that hold these (data.synth is inside data)."""
    return tuple(dict.fromkeys(name.split(".")[0] for name in names))


def step_view(step: Step, cfg: dict) -> config.View:
    """The configuration a training stage sees."""
    seen = ALWAYS + step.sections + own_sections(step.function.__module__) + used_sections(cfg, step.uses)
    return config.view(cfg, top(seen), step.keys, config.declared_keys(sections().values()), f"stage {step.name}")


def evaluation_view(method: Method, cfg: dict) -> config.View:
    """The configuration a method's evaluation sees: its embeddings' sections, and those of the metrics that apply
    to it."""
    metrics = [get("metric", m) for m in cfg["eval"]["metrics"]]
    seen = (ALWAYS + ("eval",) + method.sections + own_sections(type(method).__module__) +
            used_sections(cfg, method.uses) +
            tuple(s for m in metrics if m.applies(method, cfg) for s in (*m.sections, *(c.section for c in m.config))))
    return config.view(cfg, top(seen), (), config.declared_keys(sections().values()),
                       f"the evaluation of {method.name}")


def train(step: Step, ctx: Context, build: Callable[[Context], "Training"] | None = None) -> tuple[dict, list[dict]]:
    """Compute the stage: build its Training (by `build` instead of the step's own, where given) and fit it, or run
    its `compute`; returns (its state, its history)."""
    if step.compute is not None:
        return step.compute(ctx)
    from cpep.nn.train import Schedule, train
    run = config.Train.of(ctx.cfg)
    schedule = sections()[step.schedule].of(ctx.cfg)
    training = (build or step.build)(ctx)
    return train(training, Schedule.of(schedule), ctx.device, ctx.seeds.order, ctx.checkpoint,
                 run.checkpoint_every, ctx.on_epoch, run.compile, config.Data.of(ctx.cfg).in_memory_gb * 1e9,
                 run.workers)
