"""One emg2pose recording: its layout, the integrity scan that also finds its IK-failure-free windows, the
cache of each recording's scan verdict (WindowIndex), and a bounded set of open recordings (OpenFiles).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from cpep.data import schema
from cpep.errors import DataError
from cpep.files import replace_atomically

INDEX_FORMAT = 3  # indices of older formats (before the bad-value scan, without row counts) are not trusted


def validate_recording(path: Path) -> None:
    """Raise DataError with one line if `path` is not an HDF5 recording in the emg2pose schema."""
    with open_recording(path) as f:
        problem = layout_problem(path, f)
    if problem:
        raise DataError(problem)


def open_recording(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None


OPEN_FILES = 32  # HDF5 files one reader keeps open at most: the real training split is thousands of files


class OpenFiles:
    """Recordings opened on demand, at most `limit` at a time: opening one more closes the least recently used.

    h5py handles cannot cross process boundaries: a copy made by pickling starts empty, and after a fork (a loader
    worker) the parent's handles are dropped, never used.
    """

    def __init__(self, limit: int = OPEN_FILES):
        self.limit = limit
        self._files: OrderedDict[str, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self):
        return {"limit": self.limit}

    def __setstate__(self, state):
        self.__init__(state["limit"])

    def timeseries(self, path: str) -> h5py.Dataset:
        if self._pid != os.getpid():
            self.__init__(self.limit)
        f = self._files.pop(path, None)
        if f is None:
            while len(self._files) >= self.limit:
                self._files.popitem(last=False)[1].close()
            f = open_recording(Path(path))
        self._files[path] = f  # now the most recently used
        return f[schema.GROUP][schema.TIMESERIES]

    def __len__(self) -> int:
        return len(self._files)


def layout_problem(path: Path, f: h5py.File) -> str | None:
    """Why an open file is not an emg2pose recording (one line), or None."""
    if schema.GROUP not in f or schema.TIMESERIES not in f[schema.GROUP]:
        return f"{path}: no /{schema.GROUP}/{schema.TIMESERIES} dataset (not an emg2pose recording)"
    group = f[schema.GROUP]
    dtype = group[schema.TIMESERIES].dtype
    names = dtype.names or ()
    for field in ("time", "joint_angles", "emg"):
        if field not in names:
            return f"{path}: timeseries has no field {field!r} (fields: {', '.join(names) or 'none'})"
    channels = dtype["emg"].shape[0] if dtype["emg"].shape else 1
    if channels != schema.NUM_CHANNELS:
        return f"{path}: emg has {channels} channels, expected {schema.NUM_CHANNELS}"
    joints = dtype["joint_angles"].shape[0] if dtype["joint_angles"].shape else 1
    if joints != schema.NUM_JOINTS:
        return f"{path}: joint_angles has {joints} values per row, expected {schema.NUM_JOINTS}"
    emg_type = dtype["emg"].base
    if emg_type.kind != "f" or emg_type.itemsize != 4:
        return (f"{path}: emg is stored as {emg_type.name}, not float32 as emg2pose writes it; refused rather than "
                f"converted (its units and scale are unknown)")
    missing = [name for name in schema.GROUP_ATTRS if name not in group.attrs]
    if missing:
        return f"{path}: /{schema.GROUP} lacks the attributes {', '.join(missing)}"
    rate = group.attrs["sample_rate"]
    if float(rate) != schema.SAMPLE_RATE:
        return f"{path}: sample_rate is {rate}, expected {schema.SAMPLE_RATE}"
    return None


def ik_failures(angles: np.ndarray) -> np.ndarray:
    """Rows where inverse kinematics failed: all 20 angles ~0."""
    return np.isclose(angles, 0.0).all(axis=1)


def valid_window_starts(angles: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Starts of windows that contain no IK failure."""
    return starts_avoiding(ik_failures(angles), window, stride)


def starts_avoiding(bad: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Starts of windows (every `stride` rows) that hold no row marked in `bad`."""
    if len(bad) < window:
        return np.zeros(0, dtype=np.int64)
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    starts = np.arange(0, len(bad) - window + 1, stride)
    return starts[bad_before[starts + window] - bad_before[starts] == 0]


SCAN_ROWS = 1 << 18  # rows read at a time by the scan (about 60 MB)


class _BadRows:
    """Where one check failed, gathered chunk by chunk: first and last row, and how many values."""

    def __init__(self, what: str):
        self.what, self.first, self.last, self.values = what, -1, -1, 0

    def add(self, offset: int, bad: np.ndarray) -> None:
        rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
        if len(rows):
            self.first = offset + int(rows[0]) if self.first < 0 else self.first
            self.last = offset + int(rows[-1])
            self.values += int(bad.sum())

    def problem(self, path) -> str | None:
        if self.first < 0:
            return None
        rows = f"row {self.first}" if self.first == self.last else f"rows {self.first}-{self.last}"
        return f"{path}: {self.what} in {rows} ({self.values} value{'s' if self.values > 1 else ''})"


@dataclass(frozen=True)
class Scan:
    """What the scan of an accepted recording found: its IK-failure-free window starts, its rows and how many of
    them are IK failures."""
    starts: np.ndarray
    rows: int
    ik_rows: int


def scan_recording(path: str, window: int, stride: int) -> Scan | str:
    """A recording's Scan, or the one-line reason it is refused, from one pass over its rows.

    A file that cannot be opened raises DataError instead: that can be passing (a network file system), so it is
    not a verdict to keep.
    """
    with open_recording(Path(path)) as f:
        problem = layout_problem(path, f)
        if problem:
            return problem
        return _scan_rows(path, f[schema.GROUP][schema.TIMESERIES], window, stride)


def _scan_rows(path: str, ts: h5py.Dataset, window: int, stride: int) -> Scan | str:
    checks = [_BadRows(what) for what in ("time is not finite", "time goes backwards",
                                          "joint_angles is not finite", "emg is not finite")]
    ik = np.zeros(len(ts), dtype=bool)
    previous = -np.inf
    for offset in range(0, len(ts), SCAN_ROWS):
        rows = ts[offset:offset + SCAN_ROWS]
        time, angles = rows["time"], rows["joint_angles"]
        checks[0].add(offset, ~np.isfinite(time))
        # A repeated timestamp is let through, as emg2pose's own reader does; only a step back is refused.
        checks[1].add(offset, time < np.concatenate([[previous], time[:-1]]))
        checks[2].add(offset, ~np.isfinite(angles))
        checks[3].add(offset, ~np.isfinite(rows["emg"]))
        ik[offset:offset + len(rows)] = ik_failures(angles)
        previous = time[-1]
    problems = [p for p in (check.problem(path) for check in checks) if p]
    return problems[0] if problems else Scan(starts_avoiding(ik, window, stride), len(ik), int(ik.sum()))


def file_key(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.basename(path)}|{st.st_size}|{st.st_mtime_ns}"


class WindowIndex:
    """Each recording's scan verdict, by file identity (name, size, mtime): its Scan, or the one-line reason it
    is refused. Optionally kept in an .npz file.

    The scan reads every row, so on the real dataset it is done once and reused by every stage and process that
    shares the cache directory; a changed file has another identity and is scanned again.
    """

    def __init__(self, path: Path | None):
        self.path, self.entries, self.dirty = path, {}, False
        if path is not None and path.is_file():
            with np.load(path) as npz:
                saved = {name: npz[name] for name in npz.files}  # each access would read the array again
            starts = np.split(saved["starts"], np.cumsum(saved["counts"])[:-1])  # views of one array
            self.entries = {str(k): str(refusal) or Scan(starts[i], int(saved["rows"][i]), int(saved["ik_rows"][i]))
                            for i, (k, refusal) in enumerate(zip(saved["keys"], saved["refusals"]))}

    def get(self, key: str) -> Scan | str | None:
        return self.entries.get(key)

    def put(self, key: str, verdict: Scan | str) -> None:
        self.entries[key], self.dirty = verdict, True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        keys = list(self.entries)
        scans = [Scan(np.zeros(0, dtype=np.int64), 0, 0) if isinstance(v, str) else v for v in self.entries.values()]
        arrays = {"keys": np.array(keys), "counts": np.array([len(s.starts) for s in scans]),
                  "starts": np.concatenate([s.starts for s in scans]).astype(np.int64),
                  "rows": np.array([s.rows for s in scans], dtype=np.int64),
                  "ik_rows": np.array([s.ik_rows for s in scans], dtype=np.int64),
                  "refusals": np.array([v if isinstance(v, str) else "" for v in self.entries.values()])}

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        replace_atomically(self.path, write)
        self.dirty = False
