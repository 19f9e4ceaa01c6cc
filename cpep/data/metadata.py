"""An emg2pose dataset's table of recordings: metadata.csv, with each row's file found under the data root.

Both releases are read. The full release (`emg2pose_dataset/`) has metadata.csv beside its HDF5 files. The mini
release (`emg2pose_dataset_mini/`) holds the files of one session; its metadata.csv, when there is one, may list
every recording of the full release. A row's file is `<root>/<filename>.hdf5`, or else the one file of that name
anywhere under the root (files may sit in subfolders; links to folders and files are followed). With
`allow_missing`, rows whose file is absent are left out and counted; without it, they are refused when the protocol
reads them.

Without metadata.csv, `recordings_from_files` lists what the HDF5 files' own attributes say (user, session, stage,
side): enough to describe them, not to run the protocol, whose splits only metadata.csv holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cpep.data import schema
from cpep.errors import DataError
from cpep.files import data_root, files_under

SUFFIX = ".hdf5"
HANDS = ("both", "left", "right")


def has_metadata(root: Path) -> bool:
    return (Path(root) / "metadata.csv").is_file()


def read_metadata(root: Path) -> pd.DataFrame:
    """metadata.csv, checked, with `hand_moves` and `path` (the file found for each row; "" when absent)."""
    root = data_root(root)
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
    if meta.empty:
        raise DataError(f"{csv} lists no recordings (a header and no rows)")
    truth = {"true": True, "1": True, "false": False, "0": False}
    for col in ("held_out_user", "held_out_stage"):
        meta[col] = _categorical(meta, csv, col, truth, "true or false")
    meta["side"] = _categorical(meta, csv, "side", {"left": "left", "right": "right"}, "left or right")
    meta["moving_hand"] = _categorical(meta, csv, "moving_hand", {v: v for v in HANDS}, "both, left or right")
    # A stage is performed with both hands or with one (moving_hand); the other hand's recording does not show
    # the stage's gesture.
    meta["hand_moves"] = (meta["moving_hand"] == "both") | (meta["moving_hand"] == meta["side"])
    meta["path"] = locate(root, meta["filename"])
    return meta


def read_filenames(csv: Path) -> list[str]:
    """The filename column of a metadata.csv, read alone."""
    try:
        return pd.read_csv(csv, usecols=["filename"], dtype=str)["filename"].tolist()
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: unreadable CSV ({e})") from None


def _categorical(meta: pd.DataFrame, csv: Path, col: str, values: dict, allowed: str) -> pd.Series:
    """A column's values (compared stripped and in lower case) mapped through `values`; DataError for another."""
    text = meta[col].astype(str).str.strip().str.lower()
    unknown = ~text.isin(list(values))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(f"{csv}: {col} must be {allowed}, not {meta[col].iloc[row]!r} (line {row + 2})")
    return text.map(values)


def hdf5_files(root: Path) -> list[Path]:
    """Every .hdf5 file under `root`, links to folders and files followed, each file once (the first path that
    reaches it)."""
    first: dict[Path, Path] = {}
    for path in files_under(root)[0]:
        if path.name.endswith(SUFFIX) and path.is_file():
            first.setdefault(path.resolve(), path)
    return list(first.values())


def locate(root: Path, filenames) -> list[str]:
    """The file of each `filename` (with or without .hdf5): `<root>/<filename>.hdf5`, else the one file of that
    name under the root; "" when there is none. DataError when a name is found in two places (two different
    files: two paths to one file through links are one)."""
    elsewhere: dict[str, list[Path]] | None = None
    paths = []
    for name in filenames:
        name = str(name).removesuffix(SUFFIX)
        direct = root / f"{name}{SUFFIX}"
        if direct.is_file():
            paths.append(str(direct))
            continue
        if elsewhere is None:  # walked once, and only when a file is not where metadata.csv puts it
            elsewhere = {}
            for path in hdf5_files(root):
                elsewhere.setdefault(path.name, []).append(path)
        found = elsewhere.get(Path(f"{name}{SUFFIX}").name, [])
        if len(found) > 1:
            raise DataError(f"{root}: {Path(name).name}{SUFFIX} is in {len(found)} places ({found[0]}, {found[1]}); "
                            f"keep one")
        paths.append(str(found[0]) if found else "")
    return paths


def recordings_from_files(root: Path) -> pd.DataFrame:
    """Every HDF5 file under `root`, described by its /emg2pose attributes (user, session, stage, side), for a
    directory without metadata.csv. A stage attribute ending in _both, _left or _right is read as the stage and
    its moving hand (emg2pose's files seem to name it so; metadata.csv keeps them apart)."""
    from cpep.data.recordings import layout_problem, open_recording
    rows = []
    for path in hdf5_files(Path(root)):
        with open_recording(path) as f:
            problem = layout_problem(path, f)
            if problem:
                raise DataError(problem)
            attrs = f[schema.GROUP].attrs
            stage, hand = _stage_and_hand(_text(attrs["stage"]))
            rows.append({"filename": path.stem, "user": _text(attrs["user"]), "session": _text(attrs["session"]),
                         "stage": stage, "side": _text(attrs["side"]), "moving_hand": hand, "path": str(path)})
    return pd.DataFrame(rows, columns=["filename", "user", "session", "stage", "side", "moving_hand", "path"])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stage_and_hand(stage: str) -> tuple[str, str]:
    base, _, hand = stage.rpartition("_")
    return (base, hand) if base and hand in HANDS else (stage, "")
