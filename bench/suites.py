"""Suites: TOML files under bench/suites/ listing variants (a method + config overrides) and seeds.

    description = "..."
    seeds = [0, 1, 2]
    include = ["paper"]          # other suites' variants (this suite's seeds and set apply to them)
    plugins = ["my_plugins"]     # plug-in folders, relative to this file (see bench.plugins)
    [set]                        # configuration for every variant
    "mae.epochs" = 100
    "data.vocab" = "vocab.toml"  # a vocabulary file's path is relative to this file too (a name: built in)
    [[variants]]                 # name, method (a method plug-in), label, group, set
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bench import plugins
from cpep.errors import ConfigError, UserError
from cpep.named import load_toml, names


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


BUILT_IN = resources.files("bench") / "suites"


def available() -> list[str]:
    return names([BUILT_IN])


def load(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite TOML file by path; its plug-in folders become known."""
    return _load(name_or_path, ())


def _load(name_or_path: str, including: tuple[str, ...]) -> Suite:
    name, raw, path = load_toml(name_or_path, [BUILT_IN], "suite", ConfigError)
    if name in including:
        raise ConfigError(f"suite {name} includes itself (through {' -> '.join(including)})")
    known = {"description", "seeds", "set", "variants", "include", "plugins"}
    if set(raw) - known:
        raise ConfigError(f"suite {name}: unknown key(s) {', '.join(sorted(set(raw) - known))} "
                          f"(known: {', '.join(sorted(known))})")
    seeds, overrides = raw.get("seeds", [0]), raw.get("set", {})
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"suite {name}: seeds must be a list of non-negative whole numbers, e.g. [0, 1, 2]")
    if not isinstance(overrides, dict):
        raise ConfigError(f"suite {name}: set must be a table of configuration keys")
    for key in ("include", "plugins"):
        if not isinstance(raw.get(key, []), list) or not all(isinstance(x, str) for x in raw.get(key, [])):
            raise ConfigError(f"suite {name}: {key} must be a list of strings")
    here = Path(str(path)).parent
    overrides = _relative_to(here, overrides)
    folders = [(here / p).resolve() for p in raw.get("plugins", [])]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise ConfigError(f"suite {name}: plug-in folder not found: {', '.join(missing)}")
    plugins.add_folders(folders)
    methods = plugins.names("method")
    variants = []
    for other in raw.get("include", []):  # an included suite gives its variants; seeds and set are this suite's
        variants += _load(other, including + (name,)).variants
    for v in raw.get("variants", []):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not isinstance(v.get("set", {}), dict):
            raise ConfigError(f"suite {name}: each [[variants]] needs a name and may have a set table")
        if v.get("method") not in methods:
            raise ConfigError(f"suite {name}: variant {v.get('name')!r} has unknown method {v.get('method')!r} "
                              f"(methods: {', '.join(methods)})")
        variants.append(Variant(v["name"], v["method"], v.get("label", v["name"]),
                                _relative_to(here, v.get("set", {})), v.get("group", "")))
    unique: dict[str, Variant] = {}
    for v in variants:
        if unique.setdefault(v.name, v) != v:
            raise ConfigError(f"suite {name}: two different variants are named {v.name!r}")
    if not unique:
        raise ConfigError(f"suite {name} lists no variants")
    suite = Suite(name, raw.get("description", ""), tuple(seeds), dict(overrides), tuple(unique.values()))
    for v in suite.variants:  # fail now, not halfway through a sweep
        plugins.get("method", v.method).validate(plugins.resolve(suite.overrides, v.overrides))
    return suite


PATH_KEYS = ("data.vocab",)  # keys whose value may be a file's path (a .toml file, for the vocabulary)


def _relative_to(folder: Path, overrides: dict) -> dict:
    """The overrides with each relative .toml path of PATH_KEYS made absolute from the suite's folder: a suite
    means the same wherever the command runs."""
    out = dict(overrides)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value.endswith(".toml") and not Path(value).expanduser().is_absolute():
            out[key] = str((folder / value).resolve())
    return out


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
