"""The settings of the synthetic dataset: checked while planning, so kept apart from the simulator's imports."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

STAGE_SETS = ("v1", "v2")
# Settings that choose which data a run reads rather than describe the data: not part of the dataset's key.
NOT_DATA = ("seed_per_run",)


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    users: int = 32
    test_users: int = 16
    val_users: int = 0
    stage_seconds: float = 6.0
    difficulty: float = 0.35  # 0: clean, identical users; 1: low SNR, strongly different users
    sides: tuple[str, ...] = ("right",)
    one_handed: float = 0.0  # the chance that a user performs a stage with one hand (else with both)
    stages: str = "v2"  # v1: one gesture per stage (synthetic-v1); v2: stages that share postures (synthetic-v2)
    sessions: int = 2  # sessions per user, each performing every stage once
    seed_per_run: bool = True  # the data of run seed s is drawn from seed + s
    lead_seconds: float = 0.5  # a recording's first seconds in the previous stage's last posture, its last at rest
    #                             (at most a quarter of the recording each)
    posture_style: float = 0.1  # sd of a user's offset of each posture's shape (flexion, spread, opposition)
    ik_jitter: float = 0.02  # sd (radians) of high-frequency noise on the written joint angles
    hold_drive: float = 0.5  # muscle drive of a held posture, relative to its full static drive
    effort_drift: float = 0.3  # log sd of a slow drift of every muscle's gain (effort, co-contraction)
    wrist_sources: float = 0.5  # activity of wrist/forearm muscles that finger pose does not drive
    fatigue: float = 0.3  # EMG amplitude gained from fatigue by the end of a session
    ring_rotation: float = 2.5  # the band's rotation on a user's forearm: uniform within +-this many electrodes
    gain_sd: float = 0.4  # log sd of a user's per-electrode gains
    donning_rotation: float = 0.3  # sd (electrodes) of a session's extra rotation when the band is put on again
    donning_gain: float = 0.15  # log sd of a session's extra per-electrode gains
    session_scale: float = 0.3  # log sd of a session's volts-per-unit constant (skin contact, band tension)

    def key(self) -> str:
        blob = repr(sorted((k, v) for k, v in asdict(self).items() if k not in NOT_DATA)).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def vocab(self) -> str:
        """The gesture vocabulary that names this data's stages."""
        return f"synthetic-{self.stages}"

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
        if self.stages not in STAGE_SETS:
            raise ValueError(f"stages must be one of {', '.join(STAGE_SETS)}, not {self.stages!r}")
        if not 1 <= self.sessions <= 10:
            raise ValueError("sessions must be within [1, 10]")
        for name in ("lead_seconds", "posture_style", "ik_jitter", "hold_drive", "effort_drift", "wrist_sources",
                     "fatigue", "ring_rotation", "gain_sd", "donning_rotation", "donning_gain", "session_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0")
