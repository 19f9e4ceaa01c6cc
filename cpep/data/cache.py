"""The packed window cache: a selection's windows, normalised as the model sees them, in memory-mapped .npy files.

One pass reads each recording's rows in large contiguous slices (WindowDataset.rows) and writes EMG as
float16 (N, C, W), the decimated pose as float32 (N, J, W / decimation) and the index (labels, recording,
start). Batches are then gathered with one fancy index per array instead of decoding 232-byte HDF5 rows window
by window.

    <cache>/packed/<key>/        emg.npy, pose.npy, index.npz
    <cache>/packed/<key>.lock    held while a process writes that key; another one waits, then reuses it

The key covers all that shapes the arrays: the window spec, the normalisation statistics, each recording's identity
(name, size, modification time) and the windows themselves (recording, start, label). A directory only appears
by the rename of a complete one, so a writer killed midway leaves a temporary that is never read (the next writer
of that key removes it), and a directory that is damaged later is written again.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cpep.config import digest
from cpep.data.recordings import file_key
from cpep.errors import DataError
from cpep.files import create_dir_atomically, locked

if TYPE_CHECKING:
    from cpep.data.windows import WindowDataset

PACK_FORMAT = 1
READ_ROWS = 1 << 18  # rows read from a recording at once (about 60 MB)
READ_WINDOWS = 128   # windows cut from one read at most, which bounds the memory of a step of the pass
DEVICE_CHUNK = 4096  # windows copied to the device at a time (bounds the host memory of the copy)


class PackedWindows:
    """A selection's windows as arrays: emg (N, C, W) float16, pose (N, J, W / decimation) float32, labels (N,)
    int64. Memory-mapped from the cache directory, or held in memory when there is none. With `rows`, only those
    rows of the arrays, in that order: a part of a selection read from the selection's own cache."""

    def __init__(self, emg: np.ndarray, pose: np.ndarray, labels: np.ndarray, directory: Path | None = None,
                 rows: np.ndarray | None = None):
        self.emg, self.pose, self.labels, self.directory, self.rows = emg, pose, labels, directory, rows

    def __len__(self) -> int:
        return len(self.labels) if self.rows is None else len(self.rows)

    def __getstate__(self):
        # A loader process maps the files itself rather than receive a copy of them.
        return {"directory": self.directory, "rows": self.rows} if self.directory is not None else self.__dict__

    def __setstate__(self, state):
        if "emg" in state:
            self.__dict__.update(state)
        else:
            self.__dict__.update(_load(state["directory"])[0].__dict__, rows=state["rows"])

    def part(self, index) -> "PackedWindows":
        """Windows `index` of these (in that order), read from the same arrays."""
        index = np.asarray(index, dtype=np.int64)
        return PackedWindows(self.emg, self.pose, self.labels, self.directory,
                             index if self.rows is None else self.rows[index])

    def nbytes(self, emg_dtype: torch.dtype = torch.float16) -> int:
        """The size of every window, with EMG held as `emg_dtype`."""
        full = self.emg.size * emg_dtype.itemsize + self.pose.nbytes + self.labels.nbytes
        return full * len(self) // len(self.labels)

    def gather(self, idx) -> dict[str, torch.Tensor]:
        """Windows `idx` (in that order) as host tensors, EMG float16: one sorted fancy index per array (reading a
        memory map in file order), then put back in the order asked for."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.rows is not None:
            idx = self.rows[idx]
        order = np.argsort(idx, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        ascending = idx[order]
        return {name: torch.from_numpy(np.ascontiguousarray(array[ascending][back]))
                for name, array in (("emg", self.emg), ("pose", self.pose), ("label", self.labels))}

    def to(self, device: torch.device, emg_dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
        """Every window, copied to `device` a chunk at a time, EMG as `emg_dtype`."""
        out = {}
        for name, array in (("emg", self.emg), ("pose", self.pose), ("label", self.labels)):
            dtype = emg_dtype if name == "emg" else torch.from_numpy(np.empty(0, array.dtype)).dtype
            t = torch.empty((len(self), *array.shape[1:]), dtype=dtype, device=device)
            for i in range(0, len(self), DEVICE_CHUNK):
                chunk = slice(i, i + DEVICE_CHUNK)
                t[chunk] = torch.from_numpy(np.array(array[chunk] if self.rows is None else array[self.rows[chunk]]))
            out[name] = t
        return out

    def loader(self, chunks: list[torch.Tensor], workers: int, generator: torch.Generator, pin_memory: bool):
        """A DataLoader yielding gather(chunk) for each chunk of window indices, by `workers` processes if any."""
        return torch.utils.data.DataLoader(_Chunks(self, chunks), batch_size=None, num_workers=workers,
                                           generator=generator, pin_memory=pin_memory)


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, packed: PackedWindows, chunks: list[torch.Tensor]):
        self.packed, self.chunks = packed, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.packed.gather(self.chunks[i].numpy())


def pack_key(ds: WindowDataset) -> str:
    """The cache key of these windows: what shapes them and the identity of the files they come from."""
    windows = hashlib.sha256()
    for array in (ds.recording, ds.starts, ds.labels.numpy()):
        windows.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest({"format": PACK_FORMAT, "spec": dataclasses.asdict(ds.spec), "stats": ds.stats,
                   "files": [file_key(p) for p in ds.paths], "windows": windows.hexdigest()})


def pack(ds: WindowDataset, cache_dir: Path | None) -> PackedWindows:
    """The packed windows of `ds`: read from `cache_dir` when a process packed them before, else written there
    (in memory without a cache directory)."""
    if len(ds) == 0:
        raise DataError("no usable windows in this selection (recordings shorter than a window, or all IK failures)")
    if cache_dir is None:
        emg, pose = _allocate(ds, lambda name, dtype, shape: np.empty(shape, dtype))
        _fill(ds, emg, pose)
        return PackedWindows(emg, pose, ds.labels.numpy().copy())
    final = Path(cache_dir) / "packed" / pack_key(ds)
    found = _open(final, ds)
    if found is None:
        with locked(final.parent / f"{final.name}.lock"):
            found = _open(final, ds)  # another process may have written it while this one waited
            if found is None:
                shutil.rmtree(final, ignore_errors=True)  # damaged since it was written
                create_dir_atomically(final, lambda tmp: _write(ds, tmp))
                found = _open(final, ds)
    if found is None:
        raise DataError(f"{final}: the window cache just written cannot be read back")
    return found


def _allocate(ds: WindowDataset, make):
    frames = ds.spec.window // ds.spec.pose_decimation
    return (make("emg", np.float16, (len(ds), ds.channels, ds.spec.window)),
            make("pose", np.float32, (len(ds), ds.pose_dims, frames)))


def _write(ds: WindowDataset, directory: Path) -> None:
    emg, pose = _allocate(ds, lambda name, dtype, shape: _reserved_memmap(directory / f"{name}.npy", dtype, shape))
    _fill(ds, emg, pose)
    emg.flush()
    pose.flush()
    with open(directory / "index.npz", "wb") as f:
        np.savez(f, labels=ds.labels.numpy(), recording=ds.recording, starts=ds.starts)


def _reserved_memmap(path: Path, dtype, shape) -> np.memmap:
    """A new .npy file mapped for writing, its blocks allocated first: on a full disk, writing into a page of a
    sparse mapping that cannot be allocated kills the process (SIGBUS), while allocating raises ENOSPC."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system that cannot: as before
                raise
    return array


def _load(directory: Path) -> tuple[PackedWindows, dict[str, np.ndarray]]:
    with np.load(directory / "index.npz") as saved:
        index = {name: saved[name] for name in ("labels", "recording", "starts")}
    emg, pose = (np.load(directory / f"{name}.npy", mmap_mode="r") for name in ("emg", "pose"))
    return PackedWindows(emg, pose, index["labels"], directory), index


def _open(directory: Path, ds: WindowDataset) -> PackedWindows | None:
    """The packed windows in `directory` if they are complete and are those of `ds`, else None."""
    try:
        packed, index = _load(directory)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    same = (np.array_equal(index["recording"], ds.recording) and np.array_equal(index["starts"], ds.starts)
            and np.array_equal(index["labels"], ds.labels.numpy()))
    expected = _allocate(ds, lambda name, dtype, shape: (np.dtype(dtype), shape))
    if not same or [(a.dtype, a.shape) for a in (packed.emg, packed.pose)] != list(expected):
        return None
    return packed


def _fill(ds: WindowDataset, emg_out: np.ndarray, pose_out: np.ndarray) -> None:
    """One pass over the recordings, each read in contiguous slices of many windows (the EMG of a protocol that
    filters is filtered whole first)."""
    window = ds.spec.window
    order = np.lexsort((ds.starts, ds.recording))  # by recording, then start
    for block in np.split(order, np.flatnonzero(np.diff(ds.recording[order])) + 1):
        path = ds.paths[ds.recording[block[0]]]
        for part in _reads(ds.starts[block], window):
            where = block[part]
            starts = ds.starts[where]
            emg, pose = ds.rows(path, int(starts[0]), int(starts[-1]) + window)
            cut = (starts - starts[0])[:, None] + np.arange(window)
            emg_out[where], pose_out[where] = ds.normalise(emg[cut], pose[cut])


def _reads(starts: np.ndarray, window: int) -> list[slice]:
    """Consecutive runs of (sorted) window starts that one read of at most READ_ROWS rows and READ_WINDOWS windows
    covers (a longer window is read alone)."""
    parts, i = [], 0
    while i < len(starts):
        last_start = starts[i] + max(READ_ROWS, window) - window
        j = i + max(1, int(np.searchsorted(starts[i:i + READ_WINDOWS], last_start, side="right")))
        parts.append(slice(i, j))
        i = j
    return parts
