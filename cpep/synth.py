"""A simulator that writes a small paired pose/EMG dataset in exactly the emg2pose on-disk format.

Pose: named gestures as joint-angle trajectories inside the hand model's joint limits (static shapes held with
tremor, oscillations, sequences), repeated with per-repetition variability, plus free-form motion.
EMG: joint angles and speeds -> muscle activations through a signed loading map shared by all users, leading the
motion by ~70 ms -> per-muscle amplitude-modulated band-limited noise -> 16 electrodes on a ring with von Mises
gains -> per-user ring rotation, channel gains, loading perturbation, noise, mains hum and drift -> high-pass.
A user performs each stage with both hands, or (with chance `one_handed`) with one: the other hand's recording
is then of that hand at rest, its EMG following its resting pose, and metadata.csv's moving_hand says which.
Everything is drawn from one seed, so the same arguments write byte-identical data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import signal

from cpep import schema
from cpep.files import current_umask
from cpep.synth_config import SynthConfig

FS = int(schema.SAMPLE_RATE)
CONTROL_RATE = 100  # Hz; pose is generated here and interpolated to 2 kHz
HANDS_STREAM = 1 << 16  # seeds moving_hand's draws apart from those of the recordings (entries 0/1: the side)

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
}
DYNAMIC_GESTURES = ("Wiggle", "ThumbRotate", "Tap", "Counting")
FREEFORM = "Freeform"
FREEFORM_LENGTH = 3  # the free-form stage lasts this many times as long as a gesture stage
GESTURES = tuple(STATIC_SHAPES) + DYNAMIC_GESTURES + (FREEFORM,)
# The stages held out of pre-training (emg2pose holds out 6 of its 29 stages); the unseen evaluation classes.
HELD_OUT_STAGES = ("Peace", "Horns", "Shaka", "Claw")

# Forearm muscles: (name, angular position on the forearm ring in radians, signed loadings on normalised joints).
# Flexors load positively on flexion, extensors negatively; loadings are relative to the relaxed hand, which sits
# nearer full extension than full flexion, so extensor loadings are larger to give extension comparable drive.
_F = {"thumb": (0, 2, 3), "index": (5, 6, 7), "middle": (9, 10, 11), "ring": (13, 14, 15), "pinky": (17, 18, 19)}
_AA = (4, 8, 12, 16)
MUSCLES = (
    ("FDS_index", 3.3, {j: 1.0 for j in _F["index"][:2]}),
    ("FDS_middle", 3.6, {j: 1.0 for j in _F["middle"][:2]}),
    ("FDS_ring_pinky", 3.9, {j: 0.8 for j in _F["ring"][:2] + _F["pinky"][:2]}),
    ("FDP", 4.3, {j: 0.7 for f in ("index", "middle", "ring", "pinky") for j in _F[f][1:]}),
    ("FPL", 2.8, {2: 1.0, 3: 1.2}),
    ("EDC_index_middle", 0.2, {j: -2.5 for j in _F["index"][:2] + _F["middle"][:2]}),
    ("EDC_ring_pinky", 0.6, {j: -2.5 for j in _F["ring"][:2] + _F["pinky"][:2]}),
    ("EIP", 5.9, {5: -3.0, 6: -1.5}),
    ("EPL", 1.0, {0: -2.0, 2: -2.5, 3: -2.5}),
    ("APL_opponens", 1.6, {0: 1.2, 1: -0.8}),
    ("interossei", 2.3, {j: 1.0 for j in _AA}),
    ("FCU_ECU", 5.2, {j: 0.3 for f in ("index", "middle", "ring", "pinky") for j in _F[f][:1]}),
)


def shape_to_angles(flex, spread: float, opposition: float, claw: float) -> np.ndarray:
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


def _lowpass_noise(rng, n: int, dims: int, cutoff_hz: float, rate: float) -> np.ndarray:
    sos = signal.butter(2, cutoff_hz, fs=rate, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal((n + 200, dims)), axis=0)[100:-100]
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


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
    frac = _smoothstep((t - knots_t[seg]) / (knots_t[seg + 1] - knots_t[seg]))[:, None]
    q = (1 - frac) * shapes[seg] + frac * shapes[seg + 1]
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    return q + 0.05 * (hi - lo) * _lowpass_noise(rng, n, schema.NUM_JOINTS, 0.5, CONTROL_RATE)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def gesture_trajectory(name: str, seconds: float, rng: np.random.Generator, style: np.ndarray) -> np.ndarray:
    """Joint angles at CONTROL_RATE for one stage: repetitions of rest -> move -> hold -> back."""
    n = int(round(seconds * CONTROL_RATE))
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    if name == FREEFORM:
        return np.clip(_freeform(rng, n) + style, lo, hi)
    rest = shape_to_angles(*REST)
    q = np.repeat(rest[None], n, axis=0)
    t = 0.0
    while t < seconds:
        rest_s, move_s, hold_s = rng.uniform(0.25, 0.5), rng.uniform(0.15, 0.3), rng.uniform(1.0, 1.8)
        a = int((t + rest_s) * CONTROL_RATE)
        b = a + int(move_s * CONTROL_RATE)
        c = b + int(hold_s * CONTROL_RATE)
        d = c + int(move_s * CONTROL_RATE)
        if a >= n:
            break
        span = np.arange(a, min(d, n))
        local_t = (span - a) / CONTROL_RATE
        if name in STATIC_SHAPES:
            flex, spread, opposition, claw = STATIC_SHAPES[name]
            flex = np.clip(np.array(flex) + rng.normal(0, 0.07, 5), 0, 1)
            target = shape_to_angles(flex, spread + rng.normal(0, 0.1), np.clip(opposition + rng.normal(0, 0.07), 0, 1), claw)
            target = np.repeat(target[None], len(span), axis=0)
        else:
            shape = _dynamic_shape(name, local_t + rng.uniform(0, 1), rng.uniform(0.85, 1.15))
            target = shape_to_angles(*shape)
        # Weight 0 -> 1 over the move in, 1 during the hold, 1 -> 0 over the move back.
        w_in = np.clip((span - a) / max(b - a, 1), 0, 1)
        w_out = np.clip((d - span) / max(d - c, 1), 0, 1)
        w = _smoothstep(np.minimum(w_in, w_out))[:, None]
        q[span] = (1 - w) * rest + w * target
        t = d / CONTROL_RATE
    tremor = 0.01 * _lowpass_noise(rng, n, schema.NUM_JOINTS, 8.0, CONTROL_RATE)
    return np.clip(q + style + tremor, lo, hi)


def rest_trajectory(seconds: float, rng: np.random.Generator, style: np.ndarray) -> np.ndarray:
    """Joint angles at CONTROL_RATE of a hand not prompted to move: the relaxed shape, held with tremor."""
    n = int(round(seconds * CONTROL_RATE))
    tremor = 0.01 * _lowpass_noise(rng, n, schema.NUM_JOINTS, 8.0, CONTROL_RATE)
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    return np.clip(shape_to_angles(*REST)[None] + style + tremor, lo, hi)


def moving_hand(cfg: SynthConfig, user_index: int, stage_index: int) -> str:
    """emg2pose's moving_hand of one user's stage: "both", or with chance cfg.one_handed "left" or "right".

    Drawn from a stream of its own, so that the recordings of two-handed stages do not depend on cfg.one_handed.
    """
    rng = np.random.default_rng([cfg.seed, user_index, stage_index, HANDS_STREAM])
    one_handed = rng.random() < cfg.one_handed
    hand = ("left", "right")[rng.integers(2)]
    return hand if one_handed else "both"


def _muscle_tables(rng: np.random.Generator, variability: float):
    """Loading matrix (muscles x joints) and ring positions; the shared map perturbed by one user's anatomy."""
    loadings = np.zeros((len(MUSCLES), schema.NUM_JOINTS))
    for m, (_, _, joints) in enumerate(MUSCLES):
        for j, w in joints.items():
            loadings[m, j] = w
    angles = np.array([a for _, a, _ in MUSCLES])
    loadings = loadings * (1 + 0.3 * variability * rng.standard_normal(loadings.shape))
    angles = angles + 0.15 * variability * rng.standard_normal(len(angles))
    return loadings, angles


@dataclass
class UserAnatomy:
    loadings: np.ndarray
    muscle_angles: np.ndarray
    rotation: float
    channel_gain: np.ndarray
    noise_ratio: float
    style: np.ndarray


def draw_user(rng: np.random.Generator, difficulty: float) -> UserAnatomy:
    loadings, angles = _muscle_tables(rng, difficulty)
    electrode_step = 2 * np.pi / schema.NUM_CHANNELS
    return UserAnatomy(
        loadings=loadings,
        muscle_angles=angles,
        rotation=rng.uniform(-1.5, 1.5) * difficulty * electrode_step,
        channel_gain=np.exp(rng.normal(0.0, 0.3 * difficulty, schema.NUM_CHANNELS)),
        noise_ratio=10 ** (-(20.0 - 20.0 * difficulty) / 20.0),  # SNR from 20 dB (easy) to 0 dB (hard)
        style=rng.normal(0.0, 0.05 * difficulty, schema.NUM_JOINTS),
    )


def pose_to_emg(q: np.ndarray, user: UserAnatomy, rng: np.random.Generator) -> np.ndarray:
    """16-channel EMG (float32, volts) at 2 kHz for joint angles q (T, 20) at 2 kHz."""
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    qn = (q - lo) / (hi - lo)
    rest = (shape_to_angles(*REST) - lo) / (hi - lo)
    speed = np.abs(np.gradient(qn, axis=0)) * FS
    drive = 6.0 * (qn - rest) @ user.loadings.T + 0.8 * speed @ np.abs(user.loadings).T
    activation = np.logaddexp(0.0, drive) / 6.0 + 0.05  # smooth rectifier; co-contraction floor
    sos_env = signal.butter(2, 6.0, fs=FS, output="sos")
    activation = np.maximum(signal.sosfiltfilt(sos_env, activation, axis=0), 0.0)
    lead = int(0.07 * FS)  # electromechanical delay: EMG precedes the movement it causes
    activation = np.concatenate([activation[lead:], np.repeat(activation[-1:], lead, axis=0)])

    t_len, n_muscles = activation.shape
    sos_band = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=FS, output="sos")
    carriers = signal.sosfilt(sos_band, rng.standard_normal((t_len, n_muscles)), axis=0)
    sources = activation * carriers / carriers.std(axis=0, keepdims=True)

    electrodes = np.arange(schema.NUM_CHANNELS) * 2 * np.pi / schema.NUM_CHANNELS
    kappa = 3.0
    gains = np.exp(kappa * (np.cos(electrodes[:, None] - user.muscle_angles[None, :] - user.rotation) - 1.0))
    emg = sources @ gains.T * user.channel_gain

    level = emg.std()
    t = np.arange(t_len) / FS
    noise = user.noise_ratio * level * rng.standard_normal(emg.shape)
    hum = 0.05 * level * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, schema.NUM_CHANNELS)[:, None]).T
    drift = 0.5 * level * _lowpass_noise(rng, t_len, schema.NUM_CHANNELS, 0.5, FS)
    sos_hp = signal.butter(2, 20.0, btype="highpass", fs=FS, output="sos")
    emg = signal.sosfilt(sos_hp, emg + noise + drift, axis=0) + hum
    return (20e-6 * emg / level).astype(np.float32)


def _ik_failures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mask of rows where the (simulated) motion capture failed; their angles are written as zeros."""
    mask = np.zeros(n, dtype=bool)
    for _ in range(rng.poisson(1.5)):
        length = int(rng.uniform(0.05, 0.4) * FS)
        start = rng.integers(0, max(n - length, 1))
        mask[start:start + length] = True
    return mask


def write_recording(path: Path, rows: np.ndarray, attrs: dict) -> None:
    with h5py.File(path, "w") as f:
        group = f.create_group(schema.GROUP)
        group.create_dataset(schema.TIMESERIES, data=rows)
        for name, value in attrs.items():
            group.attrs[name] = value


def _split(user_index: int, cfg: SynthConfig, held_out_stage: bool) -> tuple[str, str, bool]:
    """(split, generalization, held_out_user) following emg2pose's metadata conventions."""
    n_train = cfg.users - cfg.test_users - cfg.val_users
    if user_index < n_train:
        return ("test", "stage", False) if held_out_stage else ("train", "none", False)
    split = "val" if user_index < n_train + cfg.val_users else "test"
    return split, ("user_stage" if held_out_stage else "user"), True


def _remove_stale_temporaries(out: Path, host: str) -> None:
    """Remove the temporary directories of `out` left by writers on this host that have died (killed while
    writing). Those of live writers, and of other hosts (a shared file system), are left alone."""
    for tmp in out.parent.glob(f".{out.name}.{host}.*"):
        pid = tmp.name[len(f".{out.name}.{host}."):].split(".")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def generate(cfg: SynthConfig, out: Path, progress=None) -> Path:
    """Write the dataset to the new directory `out`, atomically: a partial dataset is never left behind."""
    cfg.validate()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    _remove_stale_temporaries(out, host)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{host}.{os.getpid()}.", dir=out.parent))
    try:
        rows_meta = []
        root_rng = np.random.default_rng(cfg.seed)
        user_seeds = root_rng.integers(0, 2**63, size=cfg.users)
        total = cfg.users * len(cfg.sides) * len(GESTURES)
        for u in range(cfg.users):
            user_rng = np.random.default_rng(user_seeds[u])
            anatomy = {side: draw_user(user_rng, cfg.difficulty) for side in cfg.sides}
            user = f"synth{u:03d}"
            epoch = 1_700_000_000 + 86_400 * u
            session = f"2024-01-01-{epoch}-{hashlib.sha1(user.encode()).hexdigest()[:5]}-cv-emg-pose-train@2"
            clock = float(epoch)
            hands = [moving_hand(cfg, u, s) for s in range(len(GESTURES))]
            for side in cfg.sides:
                for s, stage in enumerate(GESTURES):
                    rng = np.random.default_rng([cfg.seed, u, s, cfg.sides.index(side)])
                    seconds = cfg.stage_seconds * (FREEFORM_LENGTH if stage == FREEFORM else 1)
                    if hands[s] in ("both", side):
                        control = gesture_trajectory(stage, seconds, rng, anatomy[side].style)
                    else:  # the hand not prompted to move rests; its EMG follows its own resting pose
                        control = rest_trajectory(seconds, rng, anatomy[side].style)
                    n = int(round(seconds * FS))
                    grid = np.arange(n) / FS
                    control_t = np.arange(len(control)) / CONTROL_RATE
                    q = np.stack([np.interp(grid, control_t, control[:, j]) for j in range(schema.NUM_JOINTS)], 1)
                    emg = pose_to_emg(q, anatomy[side], rng)
                    angles = q.copy()
                    angles[_ik_failures(rng, n)] = 0.0
                    rows = np.empty(n, dtype=schema.TIMESERIES_DTYPE)
                    rows["time"] = clock + grid
                    rows["joint_angles"] = angles
                    rows["emg"] = emg
                    filename = f"{session}-recording-{s + 1}_{side}"
                    write_recording(tmp / f"{filename}.hdf5", rows, {
                        "filename": filename, "session": session, "stage": stage, "user": user, "side": side,
                        "start": float(rows["time"][0]), "end": float(rows["time"][-1]),
                        "num_channels": np.int64(schema.NUM_CHANNELS), "sample_rate": schema.SAMPLE_RATE,
                    })
                    clock += seconds + 5.0
                    held_out_stage = stage in HELD_OUT_STAGES
                    split, generalization, held_out_user = _split(u, cfg, held_out_stage)
                    rows_meta.append({
                        "filename": filename, "user": user, "session": session, "stage": stage, "side": side,
                        "moving_hand": hands[s], "held_out_user": held_out_user, "held_out_stage": held_out_stage,
                        "split": split, "generalization": generalization,
                    })
                    if progress:
                        progress(len(rows_meta), total)
        pd.DataFrame(rows_meta, columns=list(schema.METADATA_COLUMNS)).to_csv(tmp / "metadata.csv", index=False)
        (tmp / "SYNTHETIC.txt").write_text(f"cpep-bench synthetic emg2pose-format dataset\n{asdict(cfg)}\n")
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "metadata.csv").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same dataset first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
