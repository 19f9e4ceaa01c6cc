"""Windows of paired EMG and pose, as every dataset reader gives them to training: the window specification, the
window dataset (read from a recording, or from the packed window cache), normalisation statistics and the EMG
ring-rotation augmentation.

h5py handles cannot cross process boundaries, so files are opened lazily in whichever process reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from cpep.config import digest
from cpep.data import protocols, schema
from cpep.data.cache import PackedWindows, pack
from cpep.data.recordings import OpenFiles
from cpep.files import write_text_atomically

STATS_FILES = 32  # recordings sampled (evenly) to estimate normalisation statistics


@dataclass(frozen=True)
class WindowSpec:
    window: int  # samples at 2 kHz
    stride: int
    pose_decimation: int  # pose is averaged over blocks of this many samples
    protocol: protocols.Protocol = field(default_factory=lambda: protocols.get("default"))


class WindowDataset(torch.utils.data.Dataset):
    """Windows of EMG (C, W) and pose (J, W / decimation), normalised, with integer labels (-1: none).

    `rows` reads a recording's rows (here: an emg2pose HDF5 file; a subclass may read another format);
    `dataset[i]` reads one window from its file (at most recordings.OPEN_FILES files are open at once);
    training reads `packed()`, every window written once into the window cache in `cache_dir`.
    """

    def __init__(self, paths, recording, starts, labels, spec: WindowSpec, stats: dict,
                 cache_dir: Path | None = None):
        self.paths = list(paths)
        self.recording = np.asarray(recording, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.spec, self.stats, self.cache_dir = spec, stats, cache_dir
        self.emg_scale = np.asarray(stats["emg_std"], dtype=np.float32)[:, None]
        self.pose_mean = np.asarray(stats["pose_mean"], dtype=np.float32)[:, None]
        self.pose_std = np.asarray(stats["pose_std"], dtype=np.float32)[:, None]
        self._files = OpenFiles()
        self._filtered: tuple[str, np.ndarray] | None = None  # the last recording whose EMG was filtered
        self._packed: PackedWindows | None = None
        self._part_of: tuple[WindowDataset, np.ndarray] | None = None  # (selection, positions): see part()

    def __len__(self) -> int:
        return len(self.starts)

    def normalise(self, emg: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows of rows, emg (B, W, C) (filtered, if the protocol filters) and pose (B, W, J), as the model sees
        them: EMG (B, C, W) over its per-channel RMS, or each window's channels standardised (as the protocol says),
        pose (B, J, W / decimation) averaged in blocks then standardised; float32."""
        emg = emg.transpose(0, 2, 1)
        emg = protocols.per_window(emg) if self.spec.protocol.per_window else emg / self.emg_scale
        angles = angles.transpose(0, 2, 1)
        pose = angles.reshape(*angles.shape[:2], -1, self.spec.pose_decimation).mean(-1)
        pose = (pose - self.pose_mean) / self.pose_std
        return np.ascontiguousarray(emg, dtype=np.float32), pose.astype(np.float32)

    @property
    def channels(self) -> int:
        return len(self.stats["emg_std"])

    @property
    def pose_dims(self) -> int:
        return len(self.stats["pose_mean"])

    def rows(self, path: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [start, stop) of one recording: emg (n, C), filtered as the protocol says, and pose (n, J)."""
        ts = self._files.timeseries(path)
        rows = ts[start:stop]
        filtered = self.recording_emg(ts, path)
        return (rows["emg"] if filtered is None else filtered[start:stop]), rows["joint_angles"]

    def recording_emg(self, ts: h5py.Dataset, path: str) -> np.ndarray | None:
        """A whole recording's EMG (T, C) filtered as the protocol says, or None when it does not filter: a
        zero-phase filter runs over the whole recording, before windows are cut."""
        if not self.spec.protocol.filters:
            return None
        if self._filtered is None or self._filtered[0] != path:
            self._filtered = path, protocols.filter_emg(ts.fields("emg")[:], self.spec.protocol, schema.SAMPLE_RATE)
        return self._filtered[1]

    def __getitem__(self, i: int):
        start = int(self.starts[i])
        emg, angles = self.rows(self.paths[int(self.recording[i])], start, start + self.spec.window)
        emg, pose = self.normalise(emg[None], angles[None])
        return {"emg": torch.from_numpy(emg[0]), "pose": torch.from_numpy(pose[0]), "label": self.labels[i]}

    def head(self, n: int) -> "WindowDataset":
        """The first n windows."""
        return self.subset(np.arange(min(n, len(self))))

    def subset(self, index: np.ndarray) -> "WindowDataset":
        """The windows at these positions, in this order."""
        return type(self)(self.paths, self.recording[index], self.starts[index], self.labels[index].numpy(),
                          self.spec, self.stats, self.cache_dir)

    def part(self, index: np.ndarray) -> "WindowDataset":
        """The windows at these positions, in this order, packed as part of this selection: their batches come from
        its window cache instead of one of their own (the data fraction's subsets)."""
        part = self.subset(index)
        whole, rows = self._part_of or (self, np.arange(len(self)))
        part._part_of = whole, rows[np.asarray(index, dtype=np.int64)]
        return part

    def packed(self) -> PackedWindows:
        """Every window from the window cache (cpep.data.cache), written there by the first process to ask."""
        if self._packed is None:
            if self._part_of is not None:
                whole, rows = self._part_of
                self._packed = whole.packed().part(rows)
            else:
                self._packed = pack(self, self.cache_dir)
        return self._packed


def evenly(n: int) -> np.ndarray:
    """Positions of up to STATS_FILES of n items, evenly spread: the recordings normalisation is measured on."""
    return np.unique(np.linspace(0, n - 1, min(STATS_FILES, n)).astype(int))


def cached_stats(cache_dir: Path | None, key, measure) -> dict:
    """measure()'s normalisation statistics, kept in cache_dir as stats-<digest of key>.json."""
    if cache_dir is None:
        return measure()
    cached = cache_dir / f"stats-{digest(key)}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    stats = measure()
    write_text_atomically(cached, json.dumps(stats))
    return stats


def normalisation(emg_sq, n_emg: int, pose_sum, pose_sq, n_pose: int) -> dict:
    """From sums over rows: per-channel EMG RMS, per-dimension pose mean and spread (floored, so that a silent
    channel or a still joint does not divide by zero)."""
    pose_mean = pose_sum / n_pose
    pose_std = np.sqrt(np.maximum(pose_sq / n_pose - pose_mean ** 2, 0.0))
    return {"emg_std": np.maximum(np.sqrt(emg_sq / n_emg), 1e-12).tolist(), "pose_mean": pose_mean.tolist(),
            "pose_std": np.maximum(pose_std, 1e-3).tolist()}


def random_channel_roll(emg: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Roll each window's electrode ring by a random whole number of channels in [-max_shift, max_shift].

    emg2pose's rotation augmentation: it mimics the band sitting a little rotated on another wrist.
    """
    if max_shift <= 0:
        return emg
    b, c, _ = emg.shape
    shift = torch.randint(-max_shift, max_shift + 1, (b, 1), device=emg.device)
    index = (torch.arange(c, device=emg.device).unsqueeze(0) - shift) % c
    # Whole channel rows indexed (not torch.gather per sample): the same values, a few times faster on a CPU
    return emg[torch.arange(b, device=emg.device).unsqueeze(1), index]
