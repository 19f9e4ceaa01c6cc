"""Suites: TOML files under bench/suites/ listing variants (a method + config overrides) and seeds."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cpep import config
from cpep.errors import ConfigError, UserError

METHODS = ("cpep", "emg_mae", "pose_mae", "poset", "emg2pose")


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    label: str
    overrides: dict = field(default_factory=dict)
    group: str = ""  # e.g. "patch_length": variants the report plots together


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    overrides: dict
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise UserError(f"suite {self.name!r} has no variant {name!r} (it has: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]


def _suite_dir():
    return resources.files("bench") / "suites"


def available() -> list[str]:
    return sorted(p.name[:-5] for p in _suite_dir().iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"suite file not found: {path}")
        text, name = path.read_text(), path.stem
    elif name_or_path in available():
        text, name = (_suite_dir() / f"{name_or_path}.toml").read_text(), name_or_path
    else:
        raise UserError(f"unknown suite {name_or_path!r} (available: {', '.join(available())})")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"suite {name}: invalid TOML ({e})") from None
    seeds, overrides = raw.get("seeds", [0]), raw.get("set", {})
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"suite {name}: seeds must be a list of non-negative whole numbers, e.g. [0, 1, 2]")
    if not isinstance(overrides, dict):
        raise ConfigError(f"suite {name}: set must be a table of configuration keys")
    variants = []
    for v in raw.get("variants", []):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not isinstance(v.get("set", {}), dict):
            raise ConfigError(f"suite {name}: each [[variants]] needs a name and may have a set table")
        if v.get("method") not in METHODS:
            raise ConfigError(f"suite {name}: variant {v.get('name')!r} has unknown method {v.get('method')!r} "
                              f"(methods: {', '.join(METHODS)})")
        variants.append(Variant(v["name"], v["method"], v.get("label", v["name"]), dict(v.get("set", {})),
                                v.get("group", "")))
    if not variants:
        raise ConfigError(f"suite {name} lists no variants")
    if len({v.name for v in variants}) != len(variants):
        raise ConfigError(f"suite {name}: variant names must be unique")
    suite = Suite(name, raw.get("description", ""), tuple(seeds), dict(overrides), tuple(variants))
    for v in suite.variants:  # fail now, not halfway through a sweep
        config.resolve(suite.overrides, v.overrides)
    return suite


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '0,3,7' -> (0, 3, 7); '1-2,5' -> (1, 2, 5)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"--seeds takes a list like 0-4 or 0,3,7, not {text!r}") from None
    if any(s < 0 for s in seeds):
        raise UserError("seeds must be non-negative")
    return tuple(dict.fromkeys(seeds))
