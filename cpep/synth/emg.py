"""Surface EMG of the simulator from joint angles, with the variance that pose does not explain.

Joint angles and speeds -> finger-muscle activations through a signed loading map shared by all users (a held
posture drives its muscles less than moving into it does), leading the motion by ~70 ms; a slowly drifting effort
(gain and co-contraction) and fatigue over the session scale them; wrist and forearm muscles whose activity has
nothing to do with finger pose add their own -> per-muscle amplitude-modulated band-limited noise -> 16 electrodes
on a ring with von Mises gains -> the user's anatomy (loading perturbation, ring rotation, channel gains) and the
session's donning of the band (a small rotation and gain change, one volts-per-unit constant) -> a fixed sensor
noise floor, mains hum, drift -> high-pass. Nothing is rescaled per recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from cpep.data import schema
from cpep.synth.config import SynthConfig
from cpep.synth.pose import REST, lowpass_noise, shape_to_angles

FS = int(schema.SAMPLE_RATE)
VOLTS = 20e-6  # one unit of the mixed sources, in volts, for a session scale of 1
ELECTRODE_STEP = 2 * np.pi / schema.NUM_CHANNELS

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
# Wrist and forearm muscles that finger pose does not drive (wrist flexion/extension, pronation, grip bracing).
WRIST_MUSCLES = (("FCR", 3.0), ("ECRL", 0.8), ("ECU", 5.5), ("pronator", 2.5), ("brachioradialis", 1.3))


@dataclass
class UserAnatomy:
    loadings: np.ndarray
    muscle_angles: np.ndarray  # finger muscles, then wrist muscles
    rotation: float
    channel_gain: np.ndarray
    noise_ratio: float  # sensor noise floor over the typical signal level
    style: np.ndarray


@dataclass
class Donning:
    """One session's placement of the band: a rotation and channel gains on top of the user's, volts per unit."""
    rotation: float = 0.0
    channel_gain: np.ndarray | float = 1.0
    scale: float = 1.0


def draw_user(rng: np.random.Generator, difficulty: float, cfg: SynthConfig | None = None) -> UserAnatomy:
    """One user's forearm and band placement; `difficulty` scales anatomy differences, style and the noise floor."""
    cfg = cfg or SynthConfig()
    loadings = np.zeros((len(MUSCLES), schema.NUM_JOINTS))
    for m, (_, _, joints) in enumerate(MUSCLES):
        for j, w in joints.items():
            loadings[m, j] = w
    angles = np.array([a for _, a, _ in MUSCLES] + [a for _, a in WRIST_MUSCLES])
    loadings = loadings * (1 + 0.3 * difficulty * rng.standard_normal(loadings.shape))
    angles = angles + 0.15 * difficulty * rng.standard_normal(len(angles))
    return UserAnatomy(
        loadings=loadings,
        muscle_angles=angles,
        rotation=rng.uniform(-1.0, 1.0) * cfg.ring_rotation * ELECTRODE_STEP,
        channel_gain=np.exp(rng.normal(0.0, cfg.gain_sd, schema.NUM_CHANNELS)),
        noise_ratio=10 ** (-(20.0 - 20.0 * difficulty) / 20.0),  # SNR from 20 dB (easy) to 0 dB (hard)
        style=rng.normal(0.0, 0.05 * difficulty, schema.NUM_JOINTS),
    )


def draw_donning(rng: np.random.Generator, cfg: SynthConfig) -> Donning:
    return Donning(rotation=rng.normal(0.0, cfg.donning_rotation) * ELECTRODE_STEP,
                   channel_gain=np.exp(rng.normal(0.0, cfg.donning_gain, schema.NUM_CHANNELS)),
                   scale=float(np.exp(rng.normal(0.0, cfg.session_scale))))


def _finger_activation(q: np.ndarray, user: UserAnatomy, hold_drive: float) -> np.ndarray:
    lo, hi = schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1]
    qn = (q - lo) / (hi - lo)
    rest = (shape_to_angles(*REST) - lo) / (hi - lo)
    speed = np.abs(np.gradient(qn, axis=0)) * FS
    drive = 6.0 * hold_drive * (qn - rest) @ user.loadings.T + 0.8 * speed @ np.abs(user.loadings).T
    return np.logaddexp(0.0, drive) / 6.0 + 0.05  # smooth rectifier; co-contraction floor


def pose_to_emg(q: np.ndarray, user: UserAnatomy, rng: np.random.Generator, donning: Donning | None = None,
                cfg: SynthConfig | None = None, session_progress: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """16-channel EMG (float32, volts) at 2 kHz for joint angles q (T, 20) at 2 kHz. `session_progress`: the
    fraction of the session done at the recording's start and end (fatigue grows over it)."""
    cfg, donning = cfg or SynthConfig(), donning or Donning()
    t_len = len(q)
    activation = _finger_activation(q, user, cfg.hold_drive)
    sos_env = signal.butter(2, 6.0, fs=FS, output="sos")
    activation = np.maximum(signal.sosfiltfilt(sos_env, activation, axis=0), 0.0)
    lead = int(0.07 * FS)  # electromechanical delay: EMG precedes the movement it causes
    activation = np.concatenate([activation[lead:], np.repeat(activation[-1:], lead, axis=0)])
    # Effort: a slow drift of the gain of every muscle, and co-contraction that rises with it.
    effort = np.exp(cfg.effort_drift * lowpass_noise(rng, t_len, 1, 0.2, FS))
    activation = activation * effort + 0.1 * (effort - 1.0).clip(0.0)
    wrist = cfg.wrist_sources * np.logaddexp(0.0, 1.5 * lowpass_noise(rng, t_len, len(WRIST_MUSCLES), 0.7, FS))
    activation = np.concatenate([activation, wrist], axis=1)
    fatigue = 1.0 + cfg.fatigue * np.linspace(*session_progress, t_len)[:, None]

    sos_band = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=FS, output="sos")
    carriers = signal.sosfilt(sos_band, rng.standard_normal(activation.shape), axis=0)
    sources = fatigue * activation * carriers / carriers.std(axis=0, keepdims=True)

    electrodes = np.arange(schema.NUM_CHANNELS) * ELECTRODE_STEP
    rotation = user.rotation + donning.rotation
    gains = np.exp(3.0 * (np.cos(electrodes[:, None] - user.muscle_angles[None, :] - rotation) - 1.0))
    emg = sources @ gains.T * user.channel_gain * donning.channel_gain

    t = np.arange(t_len) / FS
    noise = user.noise_ratio * rng.standard_normal(emg.shape)  # a fixed floor: the sensor's, not the signal's
    hum = 0.05 * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, schema.NUM_CHANNELS)[:, None]).T
    drift = 0.5 * lowpass_noise(rng, t_len, schema.NUM_CHANNELS, 0.5, FS)
    sos_hp = signal.butter(2, 20.0, btype="highpass", fs=FS, output="sos")
    emg = signal.sosfilt(sos_hp, donning.scale * emg + noise + drift, axis=0) + hum
    return (VOLTS * emg).astype(np.float32)
