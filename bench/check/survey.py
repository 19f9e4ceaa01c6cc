"""What `cpep-bench data check` reports of a dataset directory: its files, users, stages, sessions, hours of EMG,
IK failures and the windows of each selection, with every problem found, one line each.

Every recording present is scanned (the verdicts are kept in the cache, where runs find them). Nothing is refused
on the way: a problem is recorded and the survey goes on, so that one pass names them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cpep.data import schema
from cpep.data.emg2pose import SELECTIONS
from cpep.data.metadata import has_metadata, hdf5_files, recordings_from_files
from cpep.data.recordings import Scan, scan_recording
from cpep.errors import DataError
from cpep.files import data_root


@dataclass
class Survey:
    files: dict = field(default_factory=dict)      # listed, present, absent, unlisted
    users: dict = field(default_factory=dict)      # total, training, held-out (validation, test)
    stages: dict = field(default_factory=dict)     # total, training, held-out
    sessions: int = 0
    hours: float = 0.0                             # of EMG, in the recordings the scan accepts
    ik_fraction: float = 0.0                       # rows whose pose is an IK failure, of those recordings
    selections: dict = field(default_factory=dict)  # name -> {recordings, windows, classes}
    still_hand: tuple[int, int] | None = None      # recordings of a hand not prompted to move, those in split train
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


def survey(cfg: dict, root: Path, cache_dir: Path | None, progress=None) -> Survey:
    """The survey of `root` read with configuration `cfg`. DataError only when `root` holds no dataset at all."""
    from cpep.config import Data
    from cpep.data.emg2pose import open_data
    root = data_root(root)
    if not has_metadata(root):
        return _without_metadata(root, cfg, progress)
    data = open_data(Data.of(cfg), root, cache_dir, lenient=True)
    s = Survey()
    listed = len(data.meta) + (len(data.absent) if cfg["data"]["allow_missing"] else 0)
    present = data.meta[data.meta["path"] != ""]
    absent = len(data.absent)
    s.files = {"listed": listed, "present": len(present), "absent": absent,
               "unlisted": _unlisted(root, present["path"])}
    if absent and cfg["data"]["allow_missing"]:
        s.notes.append(f"{absent} of the {listed} recordings metadata.csv lists are absent: left out "
                       f"(data.allow_missing)")
    elif absent:
        first = data.absent["filename"].iloc[0]
        s.problem(f"{absent} of the {listed} recordings metadata.csv lists are absent (first: {first}.hdf5); "
                  f"--set data.allow_missing=true leaves them out")
    for text in data.problems:
        s.problem(text)
    _describe(s, present)
    try:
        read = data.protocol_paths()
    except DataError:  # the metadata's own problems are listed above; every refusal then counts
        read = None
    try:
        _scan(s, present["path"].tolist(), data.scan, progress, read)
    finally:
        data.save_index()
    if _protocol_possible(s, present):
        for name in SELECTIONS:
            try:
                s.selections[name] = data.count(name)
            except DataError as e:
                s.problem(str(e))
        still = data.still_hand_recordings()
        s.still_hand = (len(still), int((still["split"] == "train").sum()))
    for text in data.refusals.values():
        s.problem(text)
    return s


def _without_metadata(root: Path, cfg: dict, progress) -> Survey:
    """A directory of recordings without metadata.csv (the mini release may come so): described from the files'
    own attributes; the protocol needs the splits that only metadata.csv holds."""
    files = recordings_from_files(root)
    if files.empty:
        raise DataError(f"{root} is not an emg2pose dataset: it has no metadata.csv and no .hdf5 file")
    s = Survey(files={"listed": 0, "present": len(files), "absent": 0, "unlisted": len(files)})
    s.users = {"total": files["user"].nunique()}
    s.stages = {"total": files["stage"].nunique()}
    s.sessions = files["session"].nunique()
    d = cfg["data"]
    _scan(s, files["path"].tolist(), lambda path: scan_recording(path, d["window"], d["stride"]), progress)
    s.problem(f"{root} cannot run the CPEP protocol: it has no metadata.csv, which holds the splits and held-out "
              f"users (put emg2pose's metadata.csv there)")
    return s


def _unlisted(root: Path, paths) -> int:
    listed = {Path(p).resolve() for p in paths}
    return sum(1 for p in hdf5_files(root) if p.resolve() not in listed)


def _describe(s: Survey, meta: pd.DataFrame) -> None:
    held = meta["held_out_user"]
    s.users = {"total": meta["user"].nunique(), "training": meta.loc[~held, "user"].nunique(),
               "held-out": meta.loc[held, "user"].nunique(),
               "validation": meta.loc[held & (meta["split"] == "val"), "user"].nunique(),
               "test": meta.loc[held & (meta["split"] == "test"), "user"].nunique()}
    held_stage = meta.groupby("stage")["held_out_stage"].any()
    s.stages = {"total": len(held_stage), "training": int((~held_stage).sum()), "held-out": int(held_stage.sum())}
    s.sessions = meta["session"].nunique()


def _scan(s: Survey, paths: list[str], scan, progress, read: set[str] | None = None) -> None:
    """Hours and IK failures of the recordings the scan accepts; each refusal is a problem, or a note for a
    recording outside `read` (those the protocol reads, when known), which no run reads."""
    rows = ik_rows = 0
    for done, path in enumerate(paths, 1):
        try:
            verdict = scan(path)
        except DataError as e:  # unreadable: not a verdict the index keeps
            verdict = str(e)
        if isinstance(verdict, Scan):
            rows, ik_rows = rows + verdict.rows, ik_rows + verdict.ik_rows
        elif read is None or path in read:
            s.problem(verdict)
        else:
            s.notes.append(f"{verdict} (no selection reads it: not a problem for a run)")
        if progress:
            progress(done, len(paths))
    s.hours = rows / schema.SAMPLE_RATE / 3600
    s.ik_fraction = ik_rows / rows if rows else 0.0


def _protocol_possible(s: Survey, meta: pd.DataFrame) -> bool:
    """Whether the protocol can run at all: it pre-trains on training users and tests on held-out test users. A
    directory with one user or no test user (the mini release: one session) gets one line saying so."""
    users, sessions = meta["user"].nunique(), meta["session"].nunique()
    test_users = s.users.get("test", 0)
    if users >= 2 and test_users and s.users.get("training", 0):
        return True
    s.problem(f"cannot run the CPEP protocol: the recordings are of {users} user{'s' * (users != 1)} and "
              f"{sessions} session{'s' * (sessions != 1)}, {test_users} of them a held-out test user; it pre-trains "
              f"on training users and tests on held-out ones (the full release has them)")
    return False
