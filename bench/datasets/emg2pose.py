"""emg2pose (Meta, 2024): one HDF5 file per session x stage x hand and a metadata.csv, in data.root. Its
identity is the content of metadata.csv (and, with data.allow_missing, which of its files are there), so the same
path holding another dataset is another dataset."""

import functools
import hashlib
from pathlib import Path

from bench.datasets._on_disk import OnDisk
from cpep.data import protocols
from cpep.data.metadata import locate, read_filenames


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _present_digest(csv: str, mtime_ns: int) -> str:
    present = [Path(p).name for p in locate(Path(csv).parent, read_filenames(Path(csv))) if p]
    return hashlib.sha256("\n".join(present).encode()).hexdigest()[:16]


class Dataset(OnDisk):
    vocab = "emg2pose-v1"
    per_user = True

    def identity(self, cfg):
        d = cfg["data"]
        csv = Path(d["root"]).expanduser() / "metadata.csv"
        content = _file_digest(str(csv), csv.stat().st_mtime_ns) if csv.is_file() else str(csv)
        ident = {"name": self.name, "window": d["window"], "stride": d["stride"],
                 "pose_decimation": d["pose_decimation"], **protocols.identity(d["protocol"]),
                 "metadata.csv": content}
        if d["allow_missing"]:  # which recordings are left out is part of the data
            ident["present"] = _present_digest(str(csv), csv.stat().st_mtime_ns) if csv.is_file() else ""
        return ident

    def open(self, cfg, store):
        from cpep.config import Data
        from cpep.data.emg2pose import open_data
        return open_data(Data.of(cfg), self.root(cfg, store), store.cache_dir)
