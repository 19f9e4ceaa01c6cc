"""The settings of the synthetic dataset: checked while planning, so kept apart from the simulator's imports."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    users: int = 8
    test_users: int = 2
    val_users: int = 0
    stage_seconds: float = 8.0
    difficulty: float = 0.5  # 0: clean, identical users; 1: low SNR, strongly different users
    sides: tuple[str, ...] = ("right",)
    one_handed: float = 0.0  # the chance that a user performs a stage with one hand (else with both)

    def key(self) -> str:
        blob = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def validate(self) -> None:
        if self.users - self.test_users - self.val_users < 1:
            raise ValueError("synthetic data needs at least one training user (users > test_users + val_users)")
        if self.test_users < 1:
            raise ValueError("synthetic data needs at least one test user")
        if self.stage_seconds < 2.0:
            raise ValueError("stage_seconds must be at least 2")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError("difficulty must be within [0, 1]")
        if not 0.0 <= self.one_handed <= 1.0:
            raise ValueError("one_handed must be within [0, 1]")
        if not self.sides or set(self.sides) - {"left", "right"}:
            raise ValueError("sides must be a non-empty subset of {left, right}")
