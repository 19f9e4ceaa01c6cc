"""NinaPro DB2 files: finding them, reading one, and the scan that checks it and finds its movements.

DB2 holds one MATLAB file per subject and exercise, `S<subject>_E<exercise>_A1.mat` (any folder layout under the
data root, links to folders and files followed, names matched in any case), with rows synchronised at 2 kHz:

    emg           T x 12   Delsys Trigno electrodes
    glove         T x 22   raw CyberGlove II sensor values (proportional to joint angles, not degrees)
    restimulus    T x 1    the movement, numbered 1-49 across the three exercises (E1: 1-17, E2: 18-40,
                           E3: 41-49); 0 is rest
    rerepetition  T x 1    the repetition of that movement, 1-6; 0 is rest

Other variables (acc, inclin, force, ...) are not read. When the four differ in length by a few rows, as happens
in some files, the shortest one sets the length.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpep.config import Section, param
from cpep.data.gestures import Vocab
from cpep.data.recordings import file_key
from cpep.errors import DataError
from cpep.files import data_root, files_under, write_text_atomically

CHANNELS = 12
GLOVE = 22  # the pose: the glove's sensor vector stands in for joint angles
SAMPLE_RATE = 2000.0
MOVEMENTS = {1: range(1, 18), 2: range(18, 41), 3: range(41, 50)}  # exercise -> its movement numbers
FIELDS = ("emg", "glove", "restimulus", "rerepetition")
PATTERN = "S*_E*_A1.mat"
NAME = re.compile(r"S(\d+)_E(\d+)_A1\.mat", re.IGNORECASE)
SCAN_FORMAT = 1  # verdicts of an older scan are not read


@dataclass(frozen=True)
class MatFile:
    path: str
    subject: int
    exercise: int


@dataclass(frozen=True)
class Found:
    """The DB2 files under a root, by subject then exercise, and every other .mat file (or unreadable folder)
    there with why it is not read."""
    files: list[MatFile]
    skipped: list[tuple[str, str]]  # (path, why)


def discover(root: Path) -> Found:
    """Every `S<n>_E<e>_A1.mat` under `root` (any case). Skipped, each with its reason: a .mat file named otherwise,
    one of an exercise DB2 does not have, a link to nothing, and a second path to a file already found (through
    links). DataError for a root without one DB2 file, and for two different files of one subject and exercise."""
    root = data_root(root)
    paths, unreadable = files_under(root)
    skipped = [(str(path), f"folder not readable ({why})") for path, why in unreadable]
    found: dict[tuple[int, int], MatFile] = {}
    for path in paths:
        if path.suffix.lower() != ".mat":
            continue
        match = NAME.fullmatch(path.name)
        why = ""
        if not match:
            why = "not named S<subject>_E<exercise>_A1.mat"
        elif not path.is_file():
            why = "a link to nothing" if path.is_symlink() else "not a regular file"
        elif int(match[2]) not in MOVEMENTS:
            why = f"exercise {int(match[2])}, but NinaPro DB2 has exercises 1-3"
        if why:
            skipped.append((str(path), why))
            continue
        key = (int(match[1]), int(match[2]))
        if key in found:
            if not path.samefile(found[key].path):
                raise DataError(f"{root}: two files of subject {key[0]}, exercise {key[1]}: {found[key].path} and "
                                f"{path} (keep one)")
            skipped.append((str(path), f"the same file as {found[key].path}"))
            continue
        found[key] = MatFile(str(path), *key)
    if not found:
        more = f" ({len(skipped)} .mat file(s) skipped, e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{root} is not a NinaPro DB2 dataset: it holds no {PATTERN} file{more}")
    return Found([found[key] for key in sorted(found)], skipped)


def find_files(root: Path) -> list[MatFile]:
    """The DB2 files under `root` (discover), by subject then exercise."""
    return discover(root).files


SPLITS = ("within_subject", "cross_subject")


@dataclass(frozen=True)
class Split(Section):
    """Which windows train and which test: the ninapro_db2 dataset's section (cpep.data.ninapro_windows describes
    both splits)."""
    section = "data.ninapro"
    split: str = param("within_subject", why="repetitions 1, 3, 4, 6 train and 2, 5 test, of every subject: the "
                                             "split most DB2 work uses (the easier, within-subject protocol)",
                       choices=SPLITS)
    test_subjects: int = param(10, ">= 1", "cross_subject: how many subjects are held out, the last ones found")

    def __post_init__(self):
        self.check()

    @property
    def name(self) -> str:
        return self.split

    def identity(self) -> dict:
        """What the dataset's identity holds of the split: the held-out count only where it chooses windows."""
        if self.name == "cross_subject":
            return {"name": self.name, "test_subjects": self.test_subjects}
        return {"name": self.name}


def files_identity(root: Path) -> list[list] | str:
    """What identifies the dataset in cache keys: each file's path under the root, size and modification time (the
    files are hundreds of MB; reading them to hash their content would cost minutes). The root itself when it
    is not a directory (the run then stops on it)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return str(root)
    out = []
    for f in find_files(root):
        st = Path(f.path).stat()
        out.append([str(Path(f.path).relative_to(root)), st.st_size, st.st_mtime_ns])
    return out


def exercise_of(movement: int) -> int | None:
    """The exercise (file E<n>) a movement number belongs to; None for a number DB2 does not have."""
    return next((e for e, movements in MOVEMENTS.items() if movement in movements), None)


def vocab_movements(vocab: Vocab, kind: str) -> dict[int, int]:
    """movement number -> class label of a class set ("id" or "unseen"); DataError for a stage that is not a
    DB2 movement number."""
    out = {}
    for label, (cls, stages) in enumerate(vocab.classes(kind).items()):
        for stage in stages:
            if isinstance(stage, bool) or not isinstance(stage, int) or exercise_of(stage) is None:
                raise DataError(f"gesture vocabulary {vocab.ident}: class {cls!r} lists {stage!r}, not a NinaPro "
                                f"DB2 movement number (1-49)")
            if stage in out:
                raise DataError(f"gesture vocabulary {vocab.ident}: movement {stage} is in two classes")
            out[stage] = label
    return out


@dataclass(frozen=True)
class Recording:
    emg: np.ndarray         # (T, 12) float32
    glove: np.ndarray       # (T, 22) float32
    movement: np.ndarray    # (T,) int32, 0 = rest
    repetition: np.ndarray  # (T,) int32, 0 = rest


def read_recording(path: str) -> Recording:
    """The four variables of one file, checked; DataError (one line) for a file that is not usable."""
    return _read(str(path), file_key(path))


@functools.lru_cache(maxsize=2)  # a file is read whole (v5 cannot be read in parts): keep the last two
def _read(path: str, key: str) -> Recording:
    from cpep.data.mat import read_variables
    found = read_variables(Path(path), FIELDS)
    missing = [name for name in FIELDS if name not in found]
    if missing:
        raise DataError(f"{path}: no variable {', '.join(missing)} (a NinaPro file holds {', '.join(FIELDS)})")
    for name, columns in (("emg", CHANNELS), ("glove", GLOVE), ("restimulus", 1), ("rerepetition", 1)):
        array = found[name]
        if array.ndim != 2 or array.shape[1] != columns:
            raise DataError(f"{path}: {name} is {' x '.join(map(str, array.shape))}, expected T x {columns}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise DataError(f"{path}: {name} holds {array.dtype}, not numbers")
    rows = min(len(found[name]) for name in FIELDS)
    if rows == 0:
        raise DataError(f"{path}: no rows (" + ", ".join(f"{name} {len(found[name])}" for name in FIELDS) + ")")
    emg = found["emg"][:rows].astype(np.float32)
    glove = found["glove"][:rows].astype(np.float32)
    for name, array in (("emg", emg), ("glove", glove), ("restimulus", found["restimulus"][:rows]),
                        ("rerepetition", found["rerepetition"][:rows])):
        _check_finite(path, name, array)
    labels = {}
    for name, top in (("restimulus", 49), ("rerepetition", 1000)):
        values = found[name][:rows, 0].astype(np.float64)
        wrong = (values != np.round(values)) | (values < 0) | (values > top)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise DataError(f"{path}: {name} must be whole numbers 0-{top}, not {values[row]} (row {row})")
        labels[name] = values.astype(np.int32)
    return Recording(emg, glove, labels["restimulus"], labels["rerepetition"])


def _check_finite(path: str, name: str, array: np.ndarray) -> None:
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        where = f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"
        n = int(bad.sum())
        raise DataError(f"{path}: {name} is not finite in {where} ({n} value{'s' if n > 1 else ''})")


def scan(path: str) -> dict:
    """One file's verdict: {"rows": T, "segments": [[start, stop, movement, repetition], ...]} (the runs of
    rows of one movement and repetition; rest left out), or {"problem": "one line"}."""
    try:
        rec = read_recording(path)
    except DataError as e:
        return {"problem": str(e)}
    mov, rep = rec.movement, rec.repetition
    change = np.flatnonzero((mov[1:] != mov[:-1]) | (rep[1:] != rep[:-1])) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    stops = np.concatenate([change, [len(mov)]]).astype(np.int64)
    keep = mov[starts] != 0
    segments = np.stack([starts[keep], stops[keep], mov[starts[keep]], rep[starts[keep]]], axis=1)
    return {"rows": len(mov), "segments": segments.tolist()}


class ScanIndex:
    """Each file's scan verdict by file identity (name, size, modification time), kept in a JSON file when given
    one: the scan reads every row of every file, so it is done once per file and reused."""

    def __init__(self, path: Path | None):
        self.path, self.dirty, self.entries = path, False, {}
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("format") == SCAN_FORMAT:
                self.entries = saved["files"]

    def verdict(self, path: str) -> dict:
        key = file_key(path)
        if key not in self.entries:
            self.entries[key], self.dirty = scan(path), True
        return self.entries[key]

    def save(self) -> None:
        if self.path is not None and self.dirty:
            write_text_atomically(self.path, json.dumps({"format": SCAN_FORMAT, "files": self.entries}))
            self.dirty = False
