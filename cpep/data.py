"""Reading emg2pose-format data: validation, IK-failure-free windows, splits, gesture classes, tensors.

h5py handles cannot cross process boundaries, so files are opened lazily in whichever process reads them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from cpep import schema
from cpep.config import digest
from cpep.errors import DataError
from cpep.gestures import Vocab
from cpep.files import replace_atomically, write_text_atomically

STATS_FILES = 32  # recordings sampled (evenly) to estimate normalisation statistics


def validate_recording(path: Path) -> None:
    """Raise DataError with one line if `path` is not an HDF5 recording in the emg2pose schema."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if schema.GROUP not in f or schema.TIMESERIES not in f[schema.GROUP]:
            raise DataError(f"{path}: no /{schema.GROUP}/{schema.TIMESERIES} dataset (not an emg2pose recording)")
        group = f[schema.GROUP]
        dtype = group[schema.TIMESERIES].dtype
        names = dtype.names or ()
        for field in ("time", "joint_angles", "emg"):
            if field not in names:
                raise DataError(f"{path}: timeseries has no field {field!r} (fields: {', '.join(names) or 'none'})")
        channels = dtype["emg"].shape[0] if dtype["emg"].shape else 1
        if channels != schema.NUM_CHANNELS:
            raise DataError(f"{path}: emg has {channels} channels, expected {schema.NUM_CHANNELS}")
        joints = dtype["joint_angles"].shape[0] if dtype["joint_angles"].shape else 1
        if joints != schema.NUM_JOINTS:
            raise DataError(f"{path}: joint_angles has {joints} values per row, expected {schema.NUM_JOINTS}")
        rate = group.attrs.get("sample_rate", schema.SAMPLE_RATE)
        if float(rate) != schema.SAMPLE_RATE:
            raise DataError(f"{path}: sample_rate is {rate}, expected {schema.SAMPLE_RATE}")


def read_metadata(root: Path) -> pd.DataFrame:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a directory")
    csv = root / "metadata.csv"
    if not csv.is_file():
        raise DataError(f"{root} is not an emg2pose dataset: it has no metadata.csv")
    try:
        meta = pd.read_csv(csv, dtype={"user": str, "session": str, "filename": str, "stage": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: unreadable CSV ({e})") from None
    missing = [c for c in schema.METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise DataError(f"{csv}: missing emg2pose columns: {', '.join(missing)}")
    for col in ("held_out_user", "held_out_stage"):
        meta[col] = meta[col].astype(str).str.lower().isin(("true", "1"))
    meta["path"] = [str(root / f"{name}.hdf5") for name in meta["filename"]]
    return meta


def valid_window_starts(angles: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Starts of windows that contain no IK failure (rows whose 20 angles are all ~0)."""
    bad = np.isclose(angles, 0.0).all(axis=1)
    if len(bad) < window:
        return np.zeros(0, dtype=np.int64)
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    starts = np.arange(0, len(bad) - window + 1, stride)
    return starts[bad_before[starts + window] - bad_before[starts] == 0]


@dataclass(frozen=True)
class WindowSpec:
    window: int  # samples at 2 kHz
    stride: int
    pose_decimation: int  # pose is averaged over blocks of this many samples


class WindowDataset(torch.utils.data.Dataset):
    """Windows of EMG (16, W) and pose (20, W / decimation), normalised, with integer labels (-1: none)."""

    def __init__(self, paths, recording, starts, labels, spec: WindowSpec, stats: dict):
        self.paths = list(paths)
        self.recording = np.asarray(recording, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.spec, self.stats = spec, stats
        self.emg_scale = np.asarray(stats["emg_std"], dtype=np.float32)[:, None]
        self.pose_mean = np.asarray(stats["pose_mean"], dtype=np.float32)[:, None]
        self.pose_std = np.asarray(stats["pose_std"], dtype=np.float32)[:, None]
        self._handles: dict[int, h5py.Dataset] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.starts)

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}}

    def _timeseries(self, rec: int) -> h5py.Dataset:
        if self._pid != os.getpid():  # forked into a loader worker: never reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        if rec not in self._handles:
            self._handles[rec] = h5py.File(self.paths[rec], "r")[schema.GROUP][schema.TIMESERIES]
        return self._handles[rec]

    def __getitem__(self, i: int):
        start = int(self.starts[i])
        rows = self._timeseries(int(self.recording[i]))[start:start + self.spec.window]
        emg = rows["emg"].T / self.emg_scale
        angles = rows["joint_angles"].T
        pose = angles.reshape(angles.shape[0], -1, self.spec.pose_decimation).mean(-1)
        pose = (pose - self.pose_mean) / self.pose_std
        return {"emg": torch.from_numpy(np.ascontiguousarray(emg, dtype=np.float32)),
                "pose": torch.from_numpy(pose.astype(np.float32)), "label": self.labels[i]}

    def head(self, n: int) -> "WindowDataset":
        """The first n windows."""
        return WindowDataset(self.paths, self.recording[:n], self.starts[:n], self.labels[:n].numpy(), self.spec,
                             self.stats)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every window stacked, as one batch. For datasets that fit in memory."""
        if len(self) == 0:
            raise DataError("no usable windows in this selection")
        items = [self[i] for i in range(len(self))]
        return {name: torch.stack([item[name] for item in items]) for name in items[0]}


def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.basename(path)}|{st.st_size}|{st.st_mtime_ns}"


class WindowIndex:
    """Window starts of each recording (a file's identity: name, size, mtime), optionally kept in an .npz file.

    Finding IK failures means reading every row's joint angles, so on the real dataset this scan is done once
    and reused by every stage and process that shares the cache directory.
    """

    def __init__(self, path: Path | None):
        self.path, self.entries, self.dirty = path, {}, False
        if path is not None and path.is_file():
            with np.load(path) as saved:
                bounds = np.concatenate([[0], np.cumsum(saved["counts"])])
                self.entries = {str(k): saved["starts"][bounds[i]:bounds[i + 1]]
                                for i, k in enumerate(saved["keys"])}

    def get(self, key: str) -> np.ndarray | None:
        return self.entries.get(key)

    def put(self, key: str, starts: np.ndarray) -> None:
        self.entries[key], self.dirty = starts, True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        keys = list(self.entries)
        arrays = {"keys": np.array(keys), "counts": np.array([len(self.entries[k]) for k in keys]),
                  "starts": np.concatenate([self.entries[k] for k in keys]).astype(np.int64)}

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        replace_atomically(self.path, write)
        self.dirty = False


class Emg2PoseData:
    """An emg2pose-format dataset on disk, with the selections the CPEP protocol uses.

    With a `cache_dir`, window indices and normalisation statistics are kept there and reused.
    """

    channels = schema.NUM_CHANNELS
    pose_dims = schema.NUM_JOINTS

    def __init__(self, root: Path, vocab: Vocab, spec: WindowSpec, cache_dir: Path | None = None):
        if spec.window % spec.pose_decimation:
            raise DataError(f"window ({spec.window}) must be a multiple of pose decimation ({spec.pose_decimation})")
        self.root, self.vocab, self.spec = Path(root).resolve(), vocab, spec
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.meta = read_metadata(self.root)
        self._check_vocab()
        index_file = None
        if self.cache_dir is not None:
            index_file = self.cache_dir / f"windows-{digest((str(self.root), spec.window, spec.stride))}.npz"
        self._index = WindowIndex(index_file)
        self._unsaved_stats = None
        self.stats = self._normalisation_stats()

    def _check_vocab(self) -> None:
        stages = self.meta.groupby("stage")["held_out_stage"].any()
        for kind, must_be_held_out in (("id", False), ("unseen", True)):
            for cls, cls_stages in self.vocab.classes(kind).items():
                for stage in cls_stages:
                    if stage not in stages.index:
                        raise DataError(f"gesture vocabulary {self.vocab.ident}: class {cls!r} names stage "
                                        f"{stage!r}, which {self.root}/metadata.csv does not have")
                    if bool(stages[stage]) != must_be_held_out:
                        where = "a training stage" if must_be_held_out else "a held-out stage"
                        raise DataError(f"gesture vocabulary {self.vocab.ident}: {kind} class {cls!r} uses "
                                        f"{where} ({stage!r})")

    def _recordings(self, mask: pd.Series) -> pd.DataFrame:
        rows = self.meta[mask]
        for path in rows["path"]:
            if not os.path.isfile(path):
                raise DataError(f"{path}: listed in metadata.csv but missing")
        return rows

    def pretrain_recordings(self) -> pd.DataFrame:
        """Training users on training stages: what pre-training sees (never an unseen-class stage)."""
        return self._recordings(self.meta["split"] == "train")

    def probe_recordings(self, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test) recordings of a class set: train on training users, test on held-out test users."""
        stages = list(self.vocab.stage_labels(kind))
        in_classes = self.meta["stage"].isin(stages)
        train = self._recordings(in_classes & ~self.meta["held_out_user"])
        test = self._recordings(in_classes & self.meta["held_out_user"] & (self.meta["split"] == "test"))
        for name, rows in (("train", train), ("test", test)):
            if rows.empty:
                raise DataError(f"{self.root}: no {name} recordings for the {kind} classes of {self.vocab.ident}")
        return train, test

    def selection(self, name: str) -> WindowDataset:
        """The windows of a named selection: "pretrain", or "<id|unseen>_<train|test>" (a probe's side)."""
        if name == "pretrain":
            return self.windows(self.pretrain_recordings())
        kind, side = name.rsplit("_", 1)
        train, test = self.probe_recordings(kind)
        return self.windows(train if side == "train" else test, kind)

    def check_files(self) -> None:
        """Validate every recording the protocol reads (pre-training and both probes), before any work starts."""
        used = [self.pretrain_recordings()] + [rows for kind in ("id", "unseen") for rows in self.probe_recordings(kind)]
        for path in pd.concat(used)["path"].unique():
            validate_recording(Path(path))
        self._save_stats()

    def _window_starts(self, path: str) -> np.ndarray:
        key = _file_key(path)
        starts = self._index.get(key)
        if starts is None:
            validate_recording(Path(path))
            with h5py.File(path, "r") as f:
                angles = f[schema.GROUP][schema.TIMESERIES].fields("joint_angles")[:]
            starts = valid_window_starts(angles, self.spec.window, self.spec.stride)
            self._index.put(key, starts)
        return starts

    def windows(self, recordings: pd.DataFrame, kind: str | None = None) -> WindowDataset:
        """All IK-failure-free windows of these recordings, labelled with `kind`'s classes (or -1)."""
        labels_of = self.vocab.stage_labels(kind) if kind else {}
        paths, rec, starts, labels = [], [], [], []
        for i, row in enumerate(recordings.itertuples()):
            s = self._window_starts(row.path)
            paths.append(row.path)
            rec.append(np.full(len(s), i))
            starts.append(s)
            labels.append(np.full(len(s), labels_of.get(row.stage, -1)))
        self._index.save()
        self._save_stats()
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64))
        return WindowDataset(paths, cat(rec), cat(starts), cat(labels), self.spec, self.stats)

    def _normalisation_stats(self) -> dict:
        rows = self.pretrain_recordings()
        if rows.empty:
            raise DataError(f"{self.root}: metadata.csv has no training recordings (split == 'train')")
        picks = rows["path"].iloc[np.linspace(0, len(rows) - 1, min(STATS_FILES, len(rows))).astype(int)].unique()
        if self.cache_dir is None:
            return self._measure_stats(picks)
        cached = self.cache_dir / f"stats-{digest([_file_key(p) for p in picks])}.json"
        if cached.is_file():
            return json.loads(cached.read_text())
        stats = self._measure_stats(picks)
        self._unsaved_stats = cached, stats  # written by check_files() or windows(): a refused run writes nothing
        return stats

    def _save_stats(self) -> None:
        if self._unsaved_stats:
            path, stats = self._unsaved_stats
            write_text_atomically(path, json.dumps(stats))
            self._unsaved_stats = None

    @staticmethod
    def _measure_stats(picks) -> dict:
        """Per-channel EMG RMS, per-joint angle mean and spread (IK-failure rows left out)."""
        emg_sq, pose_sum, pose_sq, n_emg, n_pose = 0.0, 0.0, 0.0, 0, 0
        for path in picks:
            validate_recording(Path(path))
            with h5py.File(path, "r") as f:
                ts = f[schema.GROUP][schema.TIMESERIES]
                emg = ts.fields("emg")[:].astype(np.float64)
                angles = ts.fields("joint_angles")[:]
            angles = angles[~np.isclose(angles, 0.0).all(axis=1)]
            emg_sq = emg_sq + (emg ** 2).sum(0)
            n_emg += len(emg)
            pose_sum = pose_sum + angles.sum(0)
            pose_sq = pose_sq + (angles ** 2).sum(0)
            n_pose += len(angles)
        if n_pose == 0:
            raise DataError("the training recordings sampled for normalisation hold no valid (non-IK-failure) pose rows")
        pose_mean = pose_sum / n_pose
        pose_std = np.sqrt(np.maximum(pose_sq / n_pose - pose_mean ** 2, 0.0))
        return {
            "emg_std": np.maximum(np.sqrt(emg_sq / n_emg), 1e-12).tolist(),
            "pose_mean": pose_mean.tolist(),
            "pose_std": np.maximum(pose_std, 1e-3).tolist(),
        }


def random_channel_roll(emg: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Roll each window's electrode ring by a random whole number of channels in [-max_shift, max_shift].

    emg2pose's rotation augmentation: it mimics the band sitting a little rotated on another wrist.
    """
    if max_shift <= 0:
        return emg
    b, c, _ = emg.shape
    shift = torch.randint(-max_shift, max_shift + 1, (b, 1), device=emg.device)
    index = (torch.arange(c, device=emg.device).unsqueeze(0) - shift) % c
    return torch.gather(emg, 1, index.unsqueeze(-1).expand_as(emg))
