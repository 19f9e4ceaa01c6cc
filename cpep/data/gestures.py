"""Gesture vocabularies: versioned tables mapping stage names to in-distribution and unseen classes."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from cpep.errors import DataError
from cpep.named import load_toml

BUILT_IN = resources.files("cpep.data") / "vocab"


@dataclass(frozen=True)
class Vocab:
    """A versioned table mapping stage names to the in-distribution and unseen gesture classes."""

    name: str
    version: int
    in_distribution: dict[str, tuple[str, ...]]
    unseen: dict[str, tuple[str, ...]]

    @property
    def ident(self) -> str:
        return f"{self.name}-v{self.version}"

    def classes(self, kind: str) -> dict[str, tuple[str, ...]]:
        return {"id": self.in_distribution, "unseen": self.unseen}[kind]

    def stage_labels(self, kind: str) -> dict[str, int]:
        return {stage: label for label, stages in enumerate(self.classes(kind).values()) for stage in stages}


def load_vocab(name_or_path: str) -> Vocab:
    """A built-in table by name (`synthetic-v1`, `emg2pose-v1`) or a TOML file of the same shape."""
    _, raw, _ = load_toml(name_or_path, [BUILT_IN], "gesture vocabulary", DataError)
    try:
        vocab = Vocab(
            name=raw["name"], version=int(raw["version"]),
            in_distribution={k: tuple(v) for k, v in raw["in_distribution"].items()},
            unseen={k: tuple(v) for k, v in raw["unseen"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"malformed gesture vocabulary {name_or_path}: {e}") from None
    if len(vocab.in_distribution) < 2 or len(vocab.unseen) < 2:
        raise DataError(f"gesture vocabulary {vocab.ident} needs at least 2 in-distribution and 2 unseen classes")
    return vocab
