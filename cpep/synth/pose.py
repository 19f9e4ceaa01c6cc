"""Hand poses of the simulator: postures, stages made of them, and the joint-angle trajectories of a recording.

A stage is a sequence of 2-5 sub-gestures (held postures or movements) performed in turn and repeated, as
emg2pose's stages are (`ShakaVulcanPeace`, `CountingUpDown...`). Stages share postures with each other, so a
window of one held posture may belong to more than one stage; labels stay stage-level. A recording begins in the
posture the previous stage ended in (or at rest) and ends back at rest: those transition windows carry the stage's
label too. Users hold each posture in their own way (a per-user offset of every joint, and a per-user, per-posture
offset of the shape).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from cpep.data import schema

CONTROL_RATE = 100  # Hz; pose is generated here and interpolated to 2 kHz

# Hand shapes: flexion of (thumb, index, middle, ring, pinky) in [0, 1], finger spread, thumb opposition, claw
# (metacarpophalangeal joints extended while the finger's other joints flex).
Shape = tuple[tuple[float, float, float, float, float], float, float, float]
REST: Shape = ((0.25, 0.25, 0.25, 0.25, 0.25), 0.0, 0.3, 0.0)
STATIC_SHAPES: dict[str, Shape] = {
    "Fist": ((0.9, 1.0, 1.0, 1.0, 1.0), 0.0, 0.6, 0.0),
    "Spread": ((0.0, 0.0, 0.0, 0.0, 0.0), 1.0, 0.0, 0.0),
    "Point": ((0.8, 0.0, 1.0, 1.0, 1.0), 0.0, 0.6, 0.0),
    "Pinch": ((0.5, 0.55, 0.2, 0.2, 0.2), 0.0, 1.0, 0.0),
    "Peace": ((0.8, 0.0, 0.0, 1.0, 1.0), 0.8, 0.6, 0.0),
    "ThumbsUp": ((0.0, 1.0, 1.0, 1.0, 1.0), 0.0, 0.0, 0.0),
    "Horns": ((0.8, 0.0, 1.0, 1.0, 0.0), 0.5, 0.6, 0.0),
    "Shaka": ((0.0, 1.0, 1.0, 1.0, 0.0), 0.6, 0.0, 0.0),
    "OK": ((0.5, 0.6, 0.0, 0.0, 0.0), 0.4, 1.0, 0.0),
    "Claw": ((0.4, 1.0, 1.0, 1.0, 1.0), 0.6, 0.3, 1.0),
    "Three": ((0.8, 0.0, 0.0, 0.0, 1.0), 0.6, 0.6, 0.0),
    "Four": ((0.8, 0.0, 0.0, 0.0, 0.0), 0.6, 0.6, 0.0),
    "Flat": ((0.1, 0.0, 0.0, 0.0, 0.0), 0.0, 0.2, 0.0),
    "Scissors": ((0.8, 0.0, 0.0, 1.0, 1.0), 0.3, 0.6, 0.0),
    "Vulcan": ((0.1, 0.0, 0.0, 0.0, 0.0), 0.5, 0.1, 0.0),
    "Hook": ((0.5, 0.6, 0.6, 0.6, 0.6), 0.2, 0.4, 1.0),
}
DYNAMIC_GESTURES = ("Wiggle", "ThumbRotate", "Tap", "Counting")
FREEFORM = "Freeform"
FREEFORM_LENGTH = 3  # the free-form stage lasts this many times as long as a gesture stage

# Stage sets: stage name -> its sub-gestures, and the stages held out of pre-training (the unseen classes).
# v1: one gesture per stage (vocabulary synthetic-v1). v2: stages that share postures (vocabulary synthetic-v2).
STAGE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "v1": {**{name: (name,) for name in list(STATIC_SHAPES)[:10]}, **{name: (name,) for name in DYNAMIC_GESTURES},
           FREEFORM: ()},
    "v2": {
        "FistPointSpread": ("Fist", "Point", "Spread", "Flat"),
        "PinchesThumbRotate": ("Pinch", "OK", "ThumbRotate", "Point"),
        "CountingUpDown": ("Peace", "Three", "Four", "Fist"),
        "WigglingSpreading": ("Wiggle", "Spread", "Flat", "Four"),
        "ThumbsUpDownFist": ("ThumbsUp", "Fist", "Flat"),
        "TapsPointing": ("Tap", "Point", "Pinch"),
        "HandClawGrasp": ("Claw", "Fist", "Hook"),
        "ShakaVulcanPeace": ("Shaka", "Vulcan", "Peace", "Scissors"),
        "HookEmHornsOKScissors": ("Horns", "OK", "Scissors", "Shaka"),
        "CountingSideways": ("Scissors", "Three", "Vulcan", "Horns"),
        "HookHornsShaka": ("Hook", "Horns", "Shaka", "Vulcan"),
        FREEFORM: (),
    },
}
HELD_OUT = {
    "v1": ("Peace", "Horns", "Shaka", "Claw"),
    "v2": ("ShakaVulcanPeace", "HookEmHornsOKScissors", "CountingSideways", "HookHornsShaka"),
}


def stages(stage_set: str) -> tuple[str, ...]:
    return tuple(STAGE_SETS[stage_set])


def shape_to_angles(flex, spread, opposition, claw) -> np.ndarray:
    """Joint angles (radians, emg2pose order) of a hand shape; all arguments may be arrays over time."""
    flex = np.asarray(flex, dtype=float)
    n = flex.shape[:-1]
    q = np.zeros(n + (schema.NUM_JOINTS,))
    thumb = flex[..., 0]
    q[..., 0] = -0.4 + 1.4 * opposition
    q[..., 1] = 0.3 - 0.6 * opposition
    q[..., 2] = 1.1 * thumb
    q[..., 3] = 0.9 * thumb
    spread_direction = (0.3, 0.0, -0.15, -0.45)
    for i in range(4):
        f = flex[..., i + 1]
        base = 4 + 4 * i
        q[..., base] = spread * spread_direction[i] * (1.0 - f)
        q[..., base + 1] = f * 1.3 * (1.0 - claw) - 0.2 * claw
        q[..., base + 2] = f * 1.7
        q[..., base + 3] = f * 1.2
    return np.clip(q, schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1])


def lowpass_noise(rng, n: int, dims: int, cutoff_hz: float, rate: float) -> np.ndarray:
    """Unit-variance noise, band-limited below cutoff_hz, (n, dims)."""
    sos = signal.butter(2, cutoff_hz, fs=rate, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal((n + 200, dims)), axis=0)[100:-100]
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


def smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def _dynamic_shape(name: str, t: np.ndarray, rate_scale: float):
    """Hand-shape parameters over time t (seconds) for an oscillating or sequenced gesture."""
    n = len(t)
    flex = np.full((n, 5), 0.3)
    spread, opposition = np.zeros(n), np.full(n, 0.3)
    if name == "Wiggle":
        for i in range(1, 5):
            flex[:, i] = 0.35 + 0.3 * np.sin(2 * np.pi * 2.5 * rate_scale * t + i * np.pi / 2)
        spread[:] = 0.4
    elif name == "ThumbRotate":
        opposition = 0.5 + 0.45 * np.sin(2 * np.pi * 1.2 * rate_scale * t)
        flex[:, 0] = 0.4 + 0.3 * np.cos(2 * np.pi * 1.2 * rate_scale * t)
    elif name == "Tap":
        flex[:, 1] = 0.45 + 0.4 * np.sin(2 * np.pi * 3.0 * rate_scale * t)
        flex[:, 2:] = 0.6
    elif name == "Counting":
        count = np.floor(t * 2.0 * rate_scale).astype(int) % 5 + 1  # one more finger every 0.5 s
        extended = np.arange(5)[None, :] < count[:, None]
        order = np.array([1, 2, 3, 4, 0])  # index, middle, ring, pinky, then thumb
        flex[:, order] = np.where(extended, 0.0, 1.0)
        spread[:] = 0.5
    else:
        raise KeyError(name)
    return flex, spread, opposition, np.zeros(n)


def _freeform(rng: np.random.Generator, n: int) -> np.ndarray:
    """Free-form motion: a smooth path through random hand shapes, with a slow wander of every joint."""
    knots_t = np.cumsum(rng.uniform(0.3, 0.8, size=n // 20 + 2)) * CONTROL_RATE
    knots_t = np.concatenate([[0.0], knots_t])
    shapes = shape_to_angles(rng.uniform(0, 1, (len(knots_t), 5)), rng.uniform(-0.3, 1, len(knots_t)),
                             rng.uniform(0, 1, len(knots_t)), (rng.uniform(0, 1, len(knots_t)) < 0.2) * 1.0)
    t = np.arange(n)
    seg = np.searchsorted(knots_t, t, side="right") - 1
    frac = smoothstep((t - knots_t[seg]) / (knots_t[seg + 1] - knots_t[seg]))[:, None]
    q = (1 - frac) * shapes[seg] + frac * shapes[seg + 1]
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    return q + 0.05 * (hi - lo) * lowpass_noise(rng, n, schema.NUM_JOINTS, 0.5, CONTROL_RATE)


def posture_offsets(rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """One user's way of holding each posture: an offset of (5 flexions, spread, opposition), sd `scale`."""
    return {name: rng.normal(0.0, scale, 7) for name in STATIC_SHAPES}


def _posture(name: str, rng: np.random.Generator, offset: np.ndarray | None) -> np.ndarray:
    """Joint angles of one repetition of a held posture: the user's version of it, varied per repetition."""
    flex, spread, opposition, claw = STATIC_SHAPES[name]
    d = offset if offset is not None else np.zeros(7)
    flex = np.clip(np.array(flex) + d[:5] + rng.normal(0, 0.07, 5), 0, 1)
    return shape_to_angles(flex, spread + d[5] + rng.normal(0, 0.1),
                           np.clip(opposition + d[6] + rng.normal(0, 0.07), 0, 1), claw)


def stage_trajectory(sub_gestures: tuple[str, ...], seconds: float, rng: np.random.Generator, style: np.ndarray,
                     offsets: dict[str, np.ndarray] | None = None, start: str | None = None,
                     lead_seconds: float = 0.0) -> np.ndarray:
    """Joint angles at CONTROL_RATE of one stage recording: the sub-gestures in turn, repeated, each moved into,
    held (or performed) and left, sometimes through rest. The first `lead_seconds` hold posture `start` (the
    previous stage's last one; rest when None) before moving; the last `lead_seconds` return to rest."""
    n = int(round(seconds * CONTROL_RATE))
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    if not sub_gestures:
        return np.clip(_freeform(rng, n) + style, lo, hi)
    rest = shape_to_angles(*REST)
    offsets = offsets or {}
    begin = _posture(start, rng, offsets.get(start)) if start in STATIC_SHAPES else rest
    lead = int(min(lead_seconds, seconds / 4) * CONTROL_RATE)
    q = np.repeat(rest[None], n, axis=0)
    q[:lead] = begin
    previous, t, k = begin, lead, int(rng.integers(len(sub_gestures)))
    end = n - lead
    while t < end:
        name = sub_gestures[k % len(sub_gestures)]
        k += 1
        move = int(rng.uniform(0.15, 0.3) * CONTROL_RATE)
        hold = int(rng.uniform(0.9, 1.5) * CONTROL_RATE)
        span = np.arange(t, min(t + move + hold, end))
        if name in STATIC_SHAPES:
            target = np.repeat(_posture(name, rng, offsets.get(name))[None], len(span), axis=0)
        else:
            target = shape_to_angles(*_dynamic_shape(name, (span - t) / CONTROL_RATE + rng.uniform(0, 1),
                                                     rng.uniform(0.85, 1.15)))
        w = smoothstep(np.clip((span - t) / max(move, 1), 0, 1))[:, None]
        q[span] = (1 - w) * previous + w * target
        previous, t = q[span[-1]].copy(), t + move + hold
        # Back to rest between two sub-gestures now and then; always between repetitions of a lone gesture.
        if (len(sub_gestures) == 1 or rng.random() < 0.3) and t < end:
            pause = np.arange(t, min(t + move + int(0.3 * CONTROL_RATE), end))
            w = smoothstep(np.clip((pause - t) / max(move, 1), 0, 1))[:, None]
            q[pause] = (1 - w) * previous + w * rest
            previous, t = rest, t + len(pause)
    back = np.arange(end, n)
    w = smoothstep(np.clip((back - end) / (0.3 * CONTROL_RATE), 0, 1))[:, None]
    q[back] = (1 - w) * previous + w * rest
    tremor = 0.01 * lowpass_noise(rng, n, schema.NUM_JOINTS, 8.0, CONTROL_RATE)
    return np.clip(q + style + tremor, lo, hi)


def rest_trajectory(seconds: float, rng: np.random.Generator, style: np.ndarray) -> np.ndarray:
    """Joint angles at CONTROL_RATE of a hand not prompted to move: the relaxed shape, held with tremor."""
    n = int(round(seconds * CONTROL_RATE))
    tremor = 0.01 * lowpass_noise(rng, n, schema.NUM_JOINTS, 8.0, CONTROL_RATE)
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    return np.clip(shape_to_angles(*REST)[None] + style + tremor, lo, hi)


def ik_jitter(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """High-frequency noise of the motion capture's joint angles (radians, sd `sd`), (n, joints) at 2 kHz."""
    if sd <= 0:
        return np.zeros((n, schema.NUM_JOINTS))
    return sd * lowpass_noise(rng, n, schema.NUM_JOINTS, 30.0, schema.SAMPLE_RATE)


def ik_failures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mask of rows where the (simulated) motion capture failed; their angles are written as zeros."""
    mask = np.zeros(n, dtype=bool)
    for _ in range(rng.poisson(1.5)):
        length = int(rng.uniform(0.05, 0.4) * schema.SAMPLE_RATE)
        start = rng.integers(0, max(n - length, 1))
        mask[start:start + length] = True
    return mask
