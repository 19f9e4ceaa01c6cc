"""Writing files so that a reader, or a process killed mid-write, never sees half of one; and the directory a
dataset is read from."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from cpep.errors import DataError, DiskFull

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def data_root(path) -> Path:
    """`path` (a leading ~ expanded) as the directory a dataset is read from; DataError (one line) when it is not
    one."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a directory")
    return root


def files_under(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every file under `root`, sorted, each named through the folders that lead to it: links to folders and to
    files are followed, and a folder reached twice (a link to a folder already walked, or back up the tree) is
    walked once. Also the folders that could not be listed, with why. A link to nothing is listed as a file: the
    caller says why it cannot be read."""
    root = Path(root)
    walked = {_folder_key(root)}
    found, unreadable = [], []

    def refused(error: OSError) -> None:
        unreadable.append((Path(error.filename), error.strerror or str(error)))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=refused):
        here = Path(folder)
        keep = []
        for name in sorted(subfolders):
            key = _folder_key(here / name)
            if key not in walked:
                walked.add(key)
                keep.append(name)
        subfolders[:] = keep
        found += [here / name for name in names]
    return sorted(found), sorted(unreadable)


def _folder_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    """write(temporary path) beside `path`, then rename it over `path`: the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; results are shared like any file
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full(e, path)  # before the removal frees space
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise full from e
        raise


def disk_full(error: BaseException, path) -> DiskFull | None:
    """DiskFull naming `path` when `error`, raised while writing it, means that its disk is full: ENOSPC or
    EDQUOT, or a RuntimeError (torch.save reports a failed write so) on a file system without a free block left.
    None otherwise."""
    if isinstance(error, DiskFull):
        return error
    full = isinstance(error, OSError) and error.errno in DISK_FULL
    if isinstance(error, RuntimeError) and path is not None:
        with contextlib.suppress(OSError):
            full = os.statvfs(Path(path).parent).f_bavail == 0
    if not full:
        return None
    where = f" writing {path}" if path is not None else ""
    return DiskFull(f"no space left on device{where}: the disk is full; free some space and run again")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive flock on `path` (made if missing) while the block runs; other processes wait for it.

    The kernel releases it when the process ends, however it ends, so a killed holder leaves no stale lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def create_dir_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(temporary directory) beside `path`, then rename it to `path`: the whole directory or none.

    Call it holding a lock for `path` (see `locked`): the temporaries a killed writer left are removed first.
    """
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; results are shared like any file
        os.rename(tmp, path)
    except BaseException as e:
        full = disk_full(e, path)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise full from e
        raise
