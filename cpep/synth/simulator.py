"""A simulator that writes a paired pose/EMG dataset in exactly the emg2pose on-disk format.

Each user has `sessions` sessions (the band put on again each time); in each session they perform every stage
once, one after the other. Pose: cpep.synth.pose (stages of sub-gestures that share postures, transitions between
stages, per-user style, IK jitter and failures). EMG: cpep.synth.emg (the pose-driven part plus what pose does not
explain: effort drift, wrist muscles, fatigue, anatomy, donning). A user performs each stage with both hands, or
(with chance `one_handed`) with one: the other hand's recording is then of that hand at rest, its EMG following
its resting pose, and metadata.csv's moving_hand says which. Everything is drawn from one seed, so the same
arguments write byte-identical data.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from cpep.data import schema
from cpep.files import current_umask, disk_full
from cpep.synth.config import SynthConfig
from cpep.synth.emg import Donning, UserAnatomy, draw_donning, draw_user, pose_to_emg  # noqa: F401 (API)
from cpep.synth.pose import (  # noqa: F401
    CONTROL_RATE,
    FREEFORM,
    FREEFORM_LENGTH,
    HELD_OUT,
    REST,
    STAGE_SETS,
    STATIC_SHAPES,
    ik_failures,
    ik_jitter,
    posture_offsets,
    rest_trajectory,
    shape_to_angles,
    stage_trajectory,
    stages,
)
from cpep.threads import available_cpus

FS = int(schema.SAMPLE_RATE)
PR_SET_PDEATHSIG = 1  # prctl(2)
HANDS_STREAM = 1 << 16  # seeds moving_hand's draws apart from those of the recordings (entries 0/1: the side)
PAUSE_SECONDS = 5.0  # between two recordings of a session
# The default stage set's stages, and those held out of pre-training (the unseen evaluation classes).
GESTURES = stages(SynthConfig.stages)
HELD_OUT_STAGES = HELD_OUT[SynthConfig.stages]


def moving_hand(cfg: SynthConfig, user_index: int, stage_index: int) -> str:
    """emg2pose's moving_hand of one user's stage: "both", or with chance cfg.one_handed "left" or "right".

    Drawn from a stream of its own, so that the recordings of two-handed stages do not depend on cfg.one_handed.
    """
    rng = np.random.default_rng([cfg.seed, user_index, stage_index, HANDS_STREAM])
    one_handed = rng.random() < cfg.one_handed
    hand = ("left", "right")[rng.integers(2)]
    return hand if one_handed else "both"


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


def _session_name(user: str, epoch: int) -> str:
    """emg2pose's session naming: date, unix time, a short hash, the protocol."""
    day = pd.Timestamp(epoch, unit="s").strftime("%Y-%m-%d")
    digest = hashlib.sha1(f"{user}-{epoch}".encode()).hexdigest()[:5]
    return f"{day}-{epoch}-{digest}-cv-emg-pose-train@2"


def _write_user(cfg: SynthConfig, u: int, user_seed: int, out: Path, progress) -> list[dict]:
    """Every recording of user u (all sessions, sides, stages); their metadata rows."""
    stage_names = stages(cfg.stages)
    sub_gestures = STAGE_SETS[cfg.stages]
    user_rng = np.random.default_rng(user_seed)
    anatomy = {side: draw_user(user_rng, cfg.difficulty, cfg) for side in cfg.sides}
    offsets = {side: posture_offsets(user_rng, cfg.posture_style) for side in cfg.sides}
    user = f"synth{u:03d}"
    hands = [moving_hand(cfg, u, s) for s in range(len(stage_names))]
    seconds = [cfg.stage_seconds * (FREEFORM_LENGTH if st == FREEFORM else 1) for st in stage_names]
    session_length = sum(seconds) + PAUSE_SECONDS * len(seconds)
    rows_meta = []
    for k in range(cfg.sessions):
        epoch = 1_700_000_000 + 86_400 * (u * cfg.sessions + k)
        session = _session_name(user, epoch)
        for side in cfg.sides:
            donning = draw_donning(np.random.default_rng([cfg.seed, u, k, cfg.sides.index(side), 1]), cfg)
            clock, previous = float(epoch), None  # a session starts at rest
            for s, stage in enumerate(stage_names):
                rng = np.random.default_rng([cfg.seed, u, s, cfg.sides.index(side), k])
                if hands[s] in ("both", side):
                    control = stage_trajectory(sub_gestures[stage], seconds[s], rng, anatomy[side].style,
                                               offsets[side], previous, cfg.lead_seconds)
                else:  # the hand not prompted to move rests; its EMG follows its own resting pose
                    control = rest_trajectory(seconds[s], rng, anatomy[side].style)
                # The next stage starts from this one's last prompted posture (whichever hand performed it, so
                # that two-handed recordings do not depend on which stages are one-handed).
                previous = sub_gestures[stage][-1] if sub_gestures[stage] else None
                n = int(round(seconds[s] * FS))
                grid = np.arange(n) / FS
                control_t = np.arange(len(control)) / CONTROL_RATE
                q = np.stack([np.interp(grid, control_t, control[:, j]) for j in range(schema.NUM_JOINTS)], 1)
                progress_in_session = ((clock - epoch) / session_length, (clock - epoch + seconds[s]) / session_length)
                emg = pose_to_emg(q, anatomy[side], rng, donning, cfg, progress_in_session)
                angles = q + ik_jitter(rng, n, cfg.ik_jitter)  # the motion capture's error, not the hand's motion
                angles = np.clip(angles, schema.JOINT_LIMITS[:, 0], schema.JOINT_LIMITS[:, 1])
                angles[ik_failures(rng, n)] = 0.0
                rows = np.empty(n, dtype=schema.TIMESERIES_DTYPE)
                rows["time"] = clock + grid
                rows["joint_angles"] = angles
                rows["emg"] = emg
                filename = f"{session}-recording-{s + 1}_{side}"
                write_recording(out / f"{filename}.hdf5", rows, {
                    "filename": filename, "session": session, "stage": stage, "user": user, "side": side,
                    "start": float(rows["time"][0]), "end": float(rows["time"][-1]),
                    "num_channels": np.int64(schema.NUM_CHANNELS), "sample_rate": schema.SAMPLE_RATE,
                })
                clock += seconds[s] + PAUSE_SECONDS
                held_out_stage = stage in HELD_OUT[cfg.stages]
                split, generalization, held_out_user = _split(u, cfg, held_out_stage)
                rows_meta.append({
                    "filename": filename, "user": user, "session": session, "stage": stage, "side": side,
                    "moving_hand": hands[s], "held_out_user": held_out_user, "held_out_stage": held_out_stage,
                    "split": split, "generalization": generalization,
                })
                if progress:
                    progress(len(rows_meta))
    return rows_meta


def recordings_count(cfg: SynthConfig) -> int:
    return cfg.users * cfg.sessions * len(cfg.sides) * len(stages(cfg.stages))


def _die_with(parent: int) -> None:
    """Make this writer process end when `parent` does, however it ends: a parent killed with SIGKILL runs no
    cleanup, and its writers would live on, writing a dataset that nobody renames into place (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


def _write_users(cfg: SynthConfig, out: Path, workers: int, progress) -> list[dict]:
    """Every user's recordings, by `workers` processes (users are independent: each has its own seed), and their
    metadata rows in user order: the same files whatever the number of workers."""
    user_seeds = [int(s) for s in np.random.default_rng(cfg.seed).integers(0, 2**63, size=cfg.users)]
    total = recordings_count(cfg)
    if workers <= 1 or cfg.users == 1:
        rows_meta = []
        for u, seed in enumerate(user_seeds):
            done = len(rows_meta)
            rows_meta += _write_user(cfg, u, seed, out, progress and (lambda i, done=done: progress(done + i, total)))
        return rows_meta
    # fork: a spawned child would import the caller's __main__ again (impossible from stdin). The children run
    # numpy, scipy and h5py only, never torch, whose OpenMP pool does not survive a fork.
    with ProcessPoolExecutor(min(workers, cfg.users), mp_context=multiprocessing.get_context("fork"),
                             initializer=_die_with, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_write_user, cfg, u, seed, out, None) for u, seed in enumerate(user_seeds)]
        done = 0
        try:
            for future in as_completed(futures):
                done += len(future.result())
                if progress:
                    progress(done, total)
        except BaseException:  # a full disk, say: the users not started yet would fail too
            for future in futures:
                future.cancel()
            raise
        return [row for future in futures for row in future.result()]


def generate(cfg: SynthConfig, out: Path, progress=None, workers: int = 0) -> Path:
    """Write the dataset to the new directory `out`, atomically: a partial dataset is never left behind.
    `workers`: processes writing users at once; 0 = one per CPU this process is allotted."""
    cfg.check()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    _remove_stale_temporaries(out, host)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{host}.{os.getpid()}.", dir=out.parent))
    try:
        rows_meta = _write_users(cfg, tmp, workers or available_cpus(), progress)
        pd.DataFrame(rows_meta, columns=list(schema.METADATA_COLUMNS)).to_csv(tmp / "metadata.csv", index=False)
        (tmp / "SYNTHETIC.txt").write_text(f"cpep-bench synthetic emg2pose-format dataset\n{asdict(cfg)}\n"
                                           f"vocabulary: {cfg.vocab}\n")
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "metadata.csv").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same dataset first
    except BaseException as e:
        full = disk_full(e, out)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise full from e
        raise
    return out


def vocabulary(root: Path) -> str:
    """The gesture vocabulary of a dataset this simulator wrote (synthetic-v1 for those written before v2)."""
    for line in (Path(root) / "SYNTHETIC.txt").read_text().splitlines():
        if line.startswith("vocabulary: "):
            return line.split(": ", 1)[1]
    return "synthetic-v1"
