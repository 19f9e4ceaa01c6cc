"""emg2pose (Meta, 2024): one HDF5 file per session x stage x hand and a metadata.csv, in data.root. Its
identity is the content of metadata.csv and, of each recording it lists that is there, its name, size and
modification time (the files are hundreds of GB: reading them to hash their content would cost hours): the same
path holding other data, or the same files changed, is another dataset. A copy that keeps modification times
(`cp -p`, `rsync -a`) is the same dataset."""

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
def _files_digest(csv: str, mtime_ns: int) -> str:
    """Name, size and modification time of each recording metadata.csv lists that is present (looked up once per
    process and metadata.csv: planning a sweep asks for every stage)."""
    present = []
    for path in filter(None, locate(Path(csv).parent, read_filenames(Path(csv)))):
        stat = Path(path).stat()
        present.append(f"{Path(path).name} {stat.st_size} {stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(present).encode()).hexdigest()[:16]


class Dataset(OnDisk):
    vocab = "emg2pose-v1"
    per_user = True

    def identity(self, cfg):
        d = cfg["data"]
        csv = Path(d["root"]).expanduser() / "metadata.csv"
        content = _file_digest(str(csv), csv.stat().st_mtime_ns) if csv.is_file() else str(csv)
        files = _files_digest(str(csv), csv.stat().st_mtime_ns) if csv.is_file() else ""
        return {"name": self.name, "window": d["window"], "stride": d["stride"],
                "pose_decimation": d["pose_decimation"], **protocols.identity(d["protocol"]),
                "metadata.csv": content, "files": files}

    def open(self, cfg, store):
        from cpep.config import Data
        from cpep.data.emg2pose import open_data
        return open_data(Data.of(cfg), self.root(cfg, store), store.cache_dir)
