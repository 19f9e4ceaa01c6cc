"""Plug-ins: a method, a dataset, an objective or a metric is one file, found by listing its folder.

    bench/methods/NAME.py       class Method(plugins.Method)        stages, embeddings, config defaults
    bench/datasets/NAME.py      class Dataset(plugins.Dataset)      channels, pose dimensions, selections, identity
    bench/objectives/NAME.py    class Objective(plugins.Objective)  the alignment loss, chosen by align.objective
    bench/metrics/NAME.py       class Metric(plugins.Metric)        a score, or a decision per window, from embeddings

The file's name is the plug-in's name. More folders with the same four subfolders come from a suite's
`plugins = ["DIR"]` or from $CPEP_BENCH_PLUGINS (folders separated by ':'); a name may be defined once.

Method and dataset files are imported to plan a sweep, so they import torch-heavy code inside their functions:
commands that do not train (`--help`, `suites`, `status`, `report`) never load torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cpep import config
from cpep.errors import ConfigError, UserError

if TYPE_CHECKING:
    import torch

KINDS = {"method": "methods", "dataset": "datasets", "objective": "objectives", "metric": "metrics"}
BUILT_IN = Path(__file__).resolve().parent
ENV = "CPEP_BENCH_PLUGINS"


# ------------------------------------------------------------------ what a plug-in declares

@dataclass(frozen=True)
class Context:
    """What a training stage is given."""
    cfg: dict
    data: object                 # the opened dataset (cpep.data.Emg2PoseData)
    seed: int
    device: "torch.device"
    inputs: dict                 # input stage name -> its model's state dict
    checkpoint: Path | None = None
    on_epoch: Callable[[int, dict], None] | None = None

    @property
    def seeds(self) -> config.Seeds:
        """The init, order and data seeds of the run seed `seed` (config.seeds)."""
        return config.seeds(self.cfg, self.seed)


@dataclass(frozen=True)
class Step:
    """A training stage. Methods that declare the same Step (by name, config and code) share its output."""
    name: str
    sections: tuple[str, ...]           # config sections its output depends on, hashed whole into its key
    train: Callable[[Context], tuple]   # -> (model state dict, history: one dict per epoch)
    inputs: tuple[str, ...] = ()        # the steps whose models it reads
    epochs: str = ""                    # the config section whose `epochs` is its length
    uses: tuple[tuple[str, str], ...] = ()  # (plug-in kind, config key naming it): that plug-in's code counts too
    keys: tuple[str, ...] = ()          # single config keys its output depends on too; one at its default is left
    #                                     out of the key, so that a key added later keeps the keys of older outputs


@dataclass
class Embeddings:
    """A trained method's window embeddings, functions of a batch {"emg", "pose", "label"}."""
    model: "torch.nn.Module"             # moved to the device and set to eval mode before use
    lp: Callable                         # what linear probes (and other "lp" metrics) read
    zs_query: Callable | None = None     # EMG -> pose-aligned embedding (zero-shot queries)
    zs_reference: Callable | None = None  # pose -> embedding (zero-shot references)


class Method:
    name = ""
    defaults: dict = {}      # config sections (or keys) of its own
    no_zero_shot = ""        # why it has no zero-shot embedding; "" when it has one

    def steps(self, cfg: dict) -> tuple[Step, ...]:
        raise NotImplementedError

    def embeddings(self, cfg: dict, data, models: dict[str, dict]) -> Embeddings:
        """From the trained steps' models (name -> state dict)."""
        raise NotImplementedError

    def validate(self, cfg: dict) -> None:
        """Raise ConfigError for a configuration this method cannot train."""


class Dataset:
    """A dataset: its shape (channels, pose dimensions, sample rate), default vocabulary, identity and files.

    `per_user` says whether the opened dataset tells whose each test window is (`window_groups(name)`, giving
    each window's `user`): runs on it then record per-user scores (`by_user`), from which the report draws its
    IQM over seeds x users, its seed x user stratified bootstrap and P(A > B). A dataset that cannot say
    (per_user False, no `window_groups`) is still evaluated in full; its records carry no `by_user`, and the
    report's statistics are over seeds alone."""
    name = ""
    defaults: dict = {}
    channels = 16
    pose_dims = 20
    sample_rate = 2000.0
    vocab = ""               # the gesture vocabulary used when data.vocab is ""
    selections = ("pretrain", "id_train", "id_test", "unseen_train", "unseen_test")
    per_user = False         # True: the opened dataset has window_groups (see above)

    def identity(self, cfg: dict) -> dict:
        """What makes two datasets the same for cache keys."""
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
    """Open_clip's loss shape. `init_logit_bias` not None gives the model a learnable bias with that start."""
    name = ""
    init_logit_bias: float | None = None

    def __call__(self, u, v, logit_scale, logit_bias=None):
        return self.forward(u, v, logit_scale, logit_bias)

    def forward(self, u, v, logit_scale, logit_bias=None):
        raise NotImplementedError


class Metric:
    """Scores one class set. `needs` "lp": train and test hold the method's lp embedding of the windows; "zs":
    train holds pose references (zs_reference), test EMG queries (zs_query). `compute` returns {key: value} for
    `keys`; records name them KEY_id and KEY_unseen. A metric that samples sets `seeded`: its `compute` is then
    also given `seed=`, the run's order seed (seeds.order, the run seed unless set), so that each seed draws its own
    samples and the same seed the same.

    A metric whose score is the balanced accuracy of one decision per test window defines `predict` instead of
    `compute`: the evaluation scores the decisions, over all test windows and over each held-out user's (the
    record's `by_user`)."""
    name = ""
    needs = "lp"
    keys: tuple[str, ...] = ()
    seeded = False

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


BASES = {"method": Method, "dataset": Dataset, "objective": Objective, "metric": Metric}


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


# ------------------------------------------------------------------ configuration with the plug-ins' defaults

def defaults() -> dict:
    merged = config.DEFAULTS
    for kind in ("dataset", "method"):
        for name in names(kind):
            merged = config.merge(merged, get(kind, name).defaults, f"{kind} {name}")
    return merged


def resolve(*overrides: dict) -> dict:
    """The configuration: every plug-in's defaults, the overrides in order, shared and dataset checks."""
    cfg = config.resolve(*overrides, defaults=defaults())
    dataset = get("dataset", cfg["data"]["name"])
    cfg["data"]["vocab"] = cfg["data"]["vocab"] or dataset.vocab
    dataset.validate(cfg)
    for metric in cfg["eval"]["metrics"]:
        path("metric", metric)
    return cfg
