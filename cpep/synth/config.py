"""The settings of the synthetic dataset: checked while planning, so kept apart from the simulator's imports."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from cpep.config import Section, param
from cpep.errors import ConfigError

STAGE_SETS = ("v1", "v2")
# Settings that choose which data a run reads rather than describe the data: not part of the dataset's key.
NOT_DATA = ("seed_per_run",)


@dataclass(frozen=True)
class SynthConfig(Section):
    """The synthetic dataset's section of the configuration (data.synth), and the simulator's settings."""
    section = "data.synth"
    seed: int = param(0, ">= 0", "the same seed writes the same data")
    users: int = param(32, "> 0", "enough training users to pre-train on, with 16 held out")
    test_users: int = param(16, "> 0", "at least 10 test users: intervals include who is tested")
    val_users: int = param(0, ">= 0", "held-out validation users (before the test users)")
    stage_seconds: float = param(6.0, ">= 2", "seconds per gesture stage (free-form lasts 3x)")
    difficulty: float = param(0.35, ">= 0, <= 1", "0: clean, identical users; 1: low SNR, strongly different users. "
                                                  "Calibrated on the floor and the ceiling only, never on CPEP")
    sides: tuple[str, ...] = param(("right",), why="the hands recorded", settable=False)
    one_handed: float = param(0.0, ">= 0, <= 1", "the chance that a user performs a stage with one hand (else both)")
    stages: str = param("v2", why="v1: one gesture per stage (synthetic-v1); v2: stages that share postures "
                                  "(synthetic-v2)", choices=STAGE_SETS)
    sessions: int = param(2, ">= 1, <= 10", "sessions per user, each performing every stage once")
    seed_per_run: bool = param(True, why="the data of run seed s is drawn from seed + s: intervals over seeds "
                                         "include which users are simulated")
    lead_seconds: float = param(0.5, ">= 0", "a recording's first seconds in the previous stage's last posture, "
                                             "its last at rest (at most a quarter of the recording each)")
    posture_style: float = param(0.1, ">= 0", "sd of a user's offset of each posture's shape")
    ik_jitter: float = param(0.02, ">= 0", "sd (radians) of high-frequency noise on the written joint angles")
    hold_drive: float = param(0.5, ">= 0", "muscle drive of a held posture, relative to its full static drive")
    effort_drift: float = param(0.3, ">= 0", "log sd of a slow drift of every muscle's gain")
    wrist_sources: float = param(0.5, ">= 0", "activity of wrist/forearm muscles that finger pose does not drive")
    fatigue: float = param(0.3, ">= 0", "EMG amplitude gained from fatigue by the end of a session")
    ring_rotation: float = param(2.5, ">= 0", "the band's rotation on a user's forearm: uniform within +- this many "
                                              "electrodes")
    gain_sd: float = param(0.4, ">= 0", "log sd of a user's per-electrode gains")
    donning_rotation: float = param(0.3, ">= 0", "sd (electrodes) of a session's extra rotation when the band is "
                                                 "put on again")
    donning_gain: float = param(0.15, ">= 0", "log sd of a session's extra per-electrode gains")
    session_scale: float = param(0.3, ">= 0", "log sd of a session's volts-per-unit constant")

    def key(self) -> str:
        blob = repr(sorted((k, v) for k, v in asdict(self).items() if k not in NOT_DATA)).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def vocab(self) -> str:
        """The gesture vocabulary that names this data's stages."""
        return f"synthetic-{self.stages}"

    def rules(self) -> None:
        if self.users - self.test_users - self.val_users < 1:
            raise ConfigError("data.synth needs at least one training user (users > test_users + val_users)")
        if not self.sides or set(self.sides) - {"left", "right"}:
            raise ConfigError("data.synth.sides must be a non-empty subset of {left, right}")
