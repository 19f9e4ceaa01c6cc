"""The configuration: typed sections, `key=value` overrides checked against them, and stable hashing.

The configuration is a tree of sections (`data`, `encoder`, `align`, ...). Each is a frozen dataclass of `param`s
owned by the library or by one plug-in: a default, a range, the values it takes and why it has this default
(`cpep-bench config` lists them). The resolved configuration is kept as a plain nested dict, which is what records
hold, what `--set key=value` writes and what stage keys hash; `Section.of(cfg)` reads one section as its typed
object.

Choices the paper leaves open (window length, encoder size, linear-probe optimiser) are defaults that `--set`
changes. Defaults are sized for the built-in synthetic data on a laptop CPU; the `paper` suite raises the epochs
to the paper's schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from cpep.data import protocols
from cpep.errors import ConfigError

# Zero-shot votes sum k exact similarities (multiples of 2**-48 below 2**1) in an int64 (cpep.probes).
MAX_ZERO_SHOT_K = 1 << 14


def param(default, bound: str = "", why: str = "", choices: tuple = (), declared: bool = False,
          settable: bool = True) -> Any:
    """A field of a Section. `bound`: its range, comparisons joined by commas ("> 0", ">= 2", "> 0, <= 1");
    `choices`: the values it takes; `why`: the reason for its default. `declared`: a stage sees the key (and its
    key hashes it) only where the stage names it (bench.plugins.Step.keys). `settable`: false for a value the
    configuration tree does not hold (one only code sets)."""
    meta = {"bound": bound, "why": why, "choices": choices, "declared": declared, "settable": settable}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


class Section:
    """A configuration section: a frozen dataclass of `param`s at `section` in the tree ("data.synth" for one
    nested in another). `rules` checks its fields against each other; checks across sections belong to whoever
    reads them together (a method's `validate`)."""
    section: ClassVar[str] = ""

    @classmethod
    def params(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.metadata.get("settable", True)]

    @classmethod
    def of(cls, cfg: dict):
        """This section of a configuration tree, typed. A declared key the tree does not hold (a stage's view that
        does not name it) reads as Undeclared: using it is an error."""
        values = get(cfg, cls.section)
        return cls(**{f.name: values[f.name] if f.name in values or not f.metadata["declared"]
                      else Undeclared(f"{cls.section}.{f.name}", getattr(cfg, "who", "this code"))
                      for f in cls.params()})

    @classmethod
    def defaults(cls) -> dict:
        instance = cls()
        return {f.name: copy.deepcopy(getattr(instance, f.name)) for f in cls.params()}

    def check(self) -> None:
        """Each field within its bound and among its choices, then `rules`; a ConfigError names the key."""
        for f in self.params():
            value, key = getattr(self, f.name), f"{self.section}.{f.name}"
            if f.metadata["choices"] and value not in f.metadata["choices"]:
                raise ConfigError(f"{key} takes {' or '.join(map(repr, f.metadata['choices']))}, not {value!r}")
            if f.metadata["bound"]:
                check_bound(key, value, f.metadata["bound"])
        self.rules()

    def rules(self) -> None:
        pass


class Undeclared:
    """A declared key read by code that did not declare it: any use of its value is a ConfigError."""

    def __init__(self, key: str, who: str):
        self.key, self.who = key, who

    def _refuse(self, *args):
        raise ConfigError(f"{self.who} read {self.key}, which it does not declare: name it in the stage's `keys`")

    __float__ = __int__ = __bool__ = __index__ = __str__ = __hash__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse

    def __repr__(self) -> str:
        return f"Undeclared({self.key})"


def check_bound(key: str, value, bound: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, not {value}")
    tests = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
    for part in bound.split(","):
        op, limit = part.split()
        if not tests[op](float(value), float(limit)):
            raise ConfigError(f"{key} must be {bound}, not {value}")


# ------------------------------------------------------------------ the sections every run has

@dataclass(frozen=True)
class Data(Section):
    section = "data"
    name: str = param("synthetic", why="a dataset plug-in: synthetic (built in, generated once), emg2pose, "
                                        "ninapro_db2")
    root: str = param("", why="where a dataset that users bring lives (--data-root)")
    vocab: str = param("", why="the gesture vocabulary: a built-in name or a .toml path; empty: the dataset's own")
    window: int = param(2000, "> 0", "samples per window: 1 s at 2 kHz (the paper does not state its window)")
    stride: int = param(1000, "> 0", "half-overlapping windows")
    pose_decimation: int = param(10, "> 0", "pose averaged to 200 Hz; its tokens span the same time as EMG's")
    in_memory_gb: float = param(4.0, ">= 0", "selections smaller than this are copied to the training device once")
    protocol: str = param("default", why="how recordings become windows (cpep.data.protocols)",
                          choices=tuple(protocols.PROTOCOLS))
    allow_missing: bool = param(False, why="a metadata.csv row whose file is absent is refused unless this is set "
                                           "(then it is left out, and which files are present joins the identity)")
    fraction: float = param(1.0, "> 0, <= 1", "of the paired pre-training windows the alignment reads (the "
                                              "data-efficiency curve)", declared=True)


@dataclass(frozen=True)
class Seeds(Section):
    """The three sources of randomness of a run, each the run seed when -1 (unset). Setting one varies it alone
    across runs."""
    section = "seeds"
    init: int = param(-1, ">= -1", "model initialisation")
    order: int = param(-1, ">= -1", "data order: batch order, masks, augmentations, the probes' draws")
    data: int = param(-1, ">= -1", "which synthetic users exist (data.synth.seed_per_run) and which windows "
                                   "data.fraction keeps")


@dataclass(frozen=True)
class Train(Section):
    """How a stage runs, not what it computes (see RUN_ONLY and ENVIRONMENT)."""
    section = "train"
    device: str = param("auto", why="auto: CUDA when present (bf16 autocast there), else the CPU (float32)")
    workers: int = param(0, ">= 0", "loader processes for selections larger than data.in_memory_gb")
    checkpoint_every: int = param(1, "> 0", "epochs between checkpoints (resume after a kill or a requeue)")
    threads: int = param(0, ">= 0", "torch threads; 0: one per CPU this process is allotted (cpep.threads)")
    compile: bool = param(False, why="torch.compile the model trained (CUDA graphs on a GPU where shapes are "
                                     "static)")

    def rules(self) -> None:
        if self.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.device.startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                raise ConfigError(f"device {self.device!r} was asked for, but CUDA is not available here")


@dataclass(frozen=True)
class Eval(Section):
    section = "eval"
    metrics: list = param(["linear_probe", "zero_shot"], why="the metric plug-ins each run is scored by: the "
                                                              "paper's linear probe and zero-shot")


CORE = (Data, Seeds, Train, Eval)

# Keys that cannot change a number: how fast or where a stage runs, where its input lives (its content is the
# data identity). A stage's key leaves them out (tests/test_keys.py shows each changes no weight).
RUN_ONLY = ("data.root", "data.in_memory_gb", "train.workers", "train.checkpoint_every")
# Keys that change rounding, not the experiment: a stage's key leaves them out, its meta records them (with the
# torch version and the CPU), and a report whose seeds differ in them says so. The precision they imply on a
# device (bf16 on CUDA) is part of every key.
ENVIRONMENT = ("train.device", "train.threads", "train.compile")


# ------------------------------------------------------------------ trees of sections

def tree(sections: Iterable[type[Section]]) -> dict:
    """The default configuration of these sections; two sections at one place is a ConfigError."""
    out: dict = {}
    owner: dict[str, type[Section]] = {}
    for cls in sections:
        if owner.setdefault(cls.section, cls) is not cls:
            raise ConfigError(f"configuration section {cls.section!r} is defined twice: by "
                              f"{owner[cls.section].__module__} and by {cls.__module__}")
        *parents, leaf = cls.section.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {**cls.defaults(), **node.get(leaf, {})}
    return out


def _parse_value(text: str):
    """A TOML literal (5, 1e-3, true, "x", [1, 2]) or, failing that, the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _check_type(key: str, value, default):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} takes true or false, not {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} takes a number, not {value!r}")
        value = float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} takes a whole number, not {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{key} takes a string, not {value!r}")
    elif isinstance(default, list) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{key} takes a list of names, e.g. [\"a\", \"b\"], not {value!r}")
    return value


def set_key(cfg: dict, key: str, value, defaults: dict) -> None:
    """Set a dotted key that exists in `defaults`, with a value of the default's type."""
    node, default = cfg, defaults
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(default.get(part), dict):
            raise ConfigError(f"unknown configuration key {key!r}")
        node, default = node[part], default[part]
    leaf = parts[-1]
    if leaf not in default or isinstance(default[leaf], dict):
        raise ConfigError(f"unknown configuration key {key!r}")
    node[leaf] = _check_type(key, value, default[leaf])


def parse_assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _parse_value(value.strip())


def resolve(*overrides: dict, sections: Iterable[type[Section]] = CORE) -> dict:
    """The default tree of `sections` with each {dotted.key: value} mapping applied in order, every section then
    checked. The keys a data.protocol preset sets come between the defaults and the overrides: an override of one
    of them wins."""
    sections = list(sections)
    defaults = tree(sections)

    def apply(*mappings):
        cfg = copy.deepcopy(defaults)
        for mapping in mappings:
            for key, value in mapping.items():
                set_key(cfg, key, value, defaults)
        return cfg
    cfg = apply(*overrides)
    preset = protocols.get(cfg["data"]["protocol"]).preset()
    if preset:
        cfg = apply(preset, *overrides)
    for cls in sections:
        cls.of(cfg).check()
    return cfg


@dataclass(frozen=True)
class RunSeeds:
    """A run's seeds, resolved; `explicit` when any was set, which (alone) changes how training draws them."""
    init: int
    order: int
    data: int
    explicit: bool = False

    def key(self) -> dict:
        return {"init": self.init, "order": self.order, "data": self.data}


def seeds(cfg: dict, run_seed: int) -> RunSeeds:
    """The init, order and data seeds of run seed `run_seed`: each the run seed unless set in `seeds`."""
    s = cfg["seeds"]
    return RunSeeds(*(run_seed if s[k] == -1 else s[k] for k in ("init", "order", "data")),
                  explicit=any(v != -1 for v in s.values()))


# ------------------------------------------------------------------ what a stage sees

class View(dict):
    """The part of a configuration a stage can see. Reading a section it cannot see is a ConfigError naming the
    section and the stage, never a silent default: what a stage's key does not hold, the stage cannot read."""

    def __init__(self, cfg: dict, who: str):
        super().__init__(cfg)
        self.who = who

    def __missing__(self, section: str):
        raise ConfigError(f"{self.who} read configuration section {section!r}, which it does not declare: name it "
                          f"in the stage's `sections` (or define it in the same file)")

    def __reduce__(self):  # pickled to SLURM jobs: keep who it is for
        return View, (dict(self), self.who)


def declared_keys(sections: Iterable[type[Section]]) -> set[str]:
    """The keys a stage sees only where it names them (param(declared=True))."""
    return {f"{cls.section}.{f.name}" for cls in sections for f in cls.params() if f.metadata["declared"]}


def view(cfg: dict, sections: Iterable[str], keys: Iterable[str], hidden: set[str], who: str) -> View:
    """The sections named (each whole), less the `hidden` keys that are not among `keys`."""
    keys = set(keys)
    out = {name: copy.deepcopy(cfg[name]) for name in dict.fromkeys(sections)}
    for key in hidden - keys:
        section, leaf = key.rsplit(".", 1)
        if section in out:
            out[section].pop(leaf, None)
    return View(out, who)


def key_config(visible: dict) -> dict:
    """What a stage's key holds of the configuration it sees: all of it but the run-only and environment keys and
    the seeds section (the key holds the resolved seeds instead)."""
    out = {name: copy.deepcopy(section) for name, section in visible.items() if name != "seeds"}
    for key in RUN_ONLY + ENVIRONMENT:
        section, leaf = key.rsplit(".", 1)
        if section in out:
            out[section].pop(leaf, None)
    return out


def get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def digest(obj) -> str:
    """A short, stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
