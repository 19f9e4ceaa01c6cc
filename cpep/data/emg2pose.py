"""Reading an emg2pose-format dataset: metadata and its splits, gesture classes, selections of windows.
Each recording's layout and integrity scan are in cpep.data.recordings, the windows in cpep.data.windows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from cpep.config import Data, digest
from cpep.data import protocols, schema
from cpep.data.gestures import Vocab, load_vocab
from cpep.data.metadata import read_metadata
from cpep.data.recordings import INDEX_FORMAT, Scan, WindowIndex, file_key, ik_failures, scan_recording
from cpep.data.windows import WindowDataset, WindowSpec, cached_stats, evenly, normalisation
from cpep.errors import DataError

SELECTIONS = ("pretrain", "id_train", "id_test", "unseen_train", "unseen_test")
GROUP_COLUMNS = ("user", "generalization")  # what the evaluation breaks each test score down by
# What a selection lacking a class can change: the vocabulary (an option of run, data check and perf alike).
VOCAB_FIX = "choose a vocabulary whose classes the data has: --set data.vocab=FILE.toml"


class Emg2PoseData:
    """An emg2pose-format dataset on disk, with the selections the CPEP protocol uses.

    With a `cache_dir`, window indices, normalisation statistics and packed windows are kept there and reused.
    With `allow_missing`, metadata.csv rows whose file is absent are left out (`absent` keeps them). A `lenient`
    reader, for describing a dataset rather than training on it, refuses nothing: the problems of metadata.csv are
    in `problems`, refused recordings in `refusals` (their windows left out), and absent files are left out.
    """

    channels = schema.NUM_CHANNELS
    pose_dims = schema.NUM_JOINTS

    def __init__(self, root: Path, vocab: Vocab, spec: WindowSpec, cache_dir: Path | None = None,
                 allow_missing: bool = False, lenient: bool = False):
        if spec.window % spec.pose_decimation:
            raise DataError(f"window ({spec.window}) must be a multiple of pose decimation ({spec.pose_decimation})")
        self.root, self.vocab, self.spec = Path(root).resolve(), vocab, spec
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.lenient, self.refusals = lenient, {}
        meta = read_metadata(self.root)
        self.absent = meta[meta["path"] == ""]
        self.meta = meta[meta["path"] != ""] if allow_missing else meta
        self.problems = self._vocab_problems() + self._split_problems()
        if self.problems and not lenient:
            raise DataError(self.problems[0])
        index_file = None
        if self.cache_dir is not None:
            ident = (str(self.root), spec.window, spec.stride, INDEX_FORMAT)
            index_file = self.cache_dir / f"windows-{digest(ident)}.npz"
        self._index = WindowIndex(index_file)

    def _vocab_problems(self) -> list[str]:
        problems = []
        stages = self.meta.groupby("stage")["held_out_stage"].any()
        for kind, must_be_held_out in (("id", False), ("unseen", True)):
            for cls, cls_stages in self.vocab.classes(kind).items():
                for stage in cls_stages:
                    if stage not in stages.index:
                        problems.append(f"gesture vocabulary {self.vocab.ident}: class {cls!r} names stage "
                                        f"{stage!r}, which {self.root}/metadata.csv does not have")
                    elif bool(stages[stage]) != must_be_held_out:
                        where = "a training stage" if must_be_held_out else "a held-out stage"
                        problems.append(f"gesture vocabulary {self.vocab.ident}: {kind} class {cls!r} uses "
                                        f"{where} ({stage!r})")
        return problems

    def _split_problems(self) -> list[str]:
        """A metadata.csv whose pre-training selection (split == train) holds what evaluation tests on."""
        problems, m = [], self.meta
        train = m["split"] == "train"
        unseen = m["stage"].isin(list(self.vocab.stage_labels("unseen")))
        for leak, what in ((train & m["held_out_user"], "held-out users"),
                           (train & m["held_out_stage"], "held-out stages"),
                           (train & unseen, f"unseen-class stages of {self.vocab.ident}")):
            if leak.any():
                n = int(leak.sum())
                problems.append(f"{self.root}/metadata.csv: {n} recording{'s' if n > 1 else ''} of {what} in split "
                                f"'train', which pre-training reads (first: {m.loc[leak, 'filename'].iloc[0]})")
        return problems

    def _recordings(self, mask: pd.Series) -> pd.DataFrame:
        rows = self.meta[mask]
        absent = rows["path"] == ""
        if absent.any() and not self.lenient:
            raise DataError(f"{self.root / rows.loc[absent, 'filename'].iloc[0]}.hdf5: listed in metadata.csv but "
                            f"missing (--set data.allow_missing=true leaves such recordings out)")
        return rows[~absent]

    def pretrain_recordings(self) -> pd.DataFrame:
        """Training users on training stages: what pre-training sees (never an unseen-class stage)."""
        return self._recordings(self.meta["split"] == "train")

    def probe_recordings(self, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test) recordings of a class set: train on training users, test on held-out test users. A
        recording of the hand that was not prompted to move is left out: it does not show its stage's gesture."""
        stages = list(self.vocab.stage_labels(kind))
        in_classes = self.meta["stage"].isin(stages) & self.meta["hand_moves"]
        train = self._recordings(in_classes & ~self.meta["held_out_user"])
        test = self._recordings(in_classes & self.meta["held_out_user"] & (self.meta["split"] == "test"))
        for name, rows in (("train", train), ("test", test)):
            if rows.empty:
                raise DataError(f"{self.root}: no {name} recordings for the {kind} classes of {self.vocab.ident}")
        return train, test

    def still_hand_recordings(self) -> pd.DataFrame:
        """Recordings of a hand not prompted to move (moving_hand names the other hand). Pre-training reads those of
        split 'train' (the hand is tracked: pose and EMG still pair up); they carry no gesture label."""
        return self.meta[~self.meta["hand_moves"]]

    def _selection_recordings(self, name: str) -> tuple[pd.DataFrame, str | None]:
        """A named selection's recordings and the class set that labels them (None: no labels)."""
        if name == "pretrain":
            return self.pretrain_recordings(), None
        kind, side = name.rsplit("_", 1)
        train, test = self.probe_recordings(kind)
        return (train if side == "train" else test), kind

    def selection(self, name: str) -> WindowDataset:
        """The windows of a named selection: "pretrain", or "<id|unseen>_<train|test>" (a probe's side)."""
        return self.windows(*self._selection_recordings(name))

    def window_groups(self, name: str) -> dict[str, np.ndarray]:
        """Per window of a named selection, in its order: the metadata.csv columns GROUP_COLUMNS of its recording,
        as strings."""
        recordings, kind = self._selection_recordings(name)
        _, recording, _, _ = self._gather(recordings, kind)
        return {column: recordings[column].astype(str).to_numpy()[recording] for column in GROUP_COLUMNS}

    def protocol_paths(self) -> set[str]:
        """The recordings some selection reads."""
        return {path for name in SELECTIONS for path in self._selection_recordings(name)[0]["path"]}

    def check_files(self, progress=None) -> dict[str, dict]:
        """Scan every recording the protocol reads, then count each selection's windows, before any work starts.

        Raises DataError (one line) for the first refused recording, and for a selection without a window or
        without a window of one of its classes. Returns {selection: {recordings, windows, classes}}, classes
        being the window count of each class. `progress(done, total)` follows the scan, file by file.
        """
        chosen = {name: self._selection_recordings(name) for name in SELECTIONS}
        self._scan(pd.concat([rows for rows, _ in chosen.values()])["path"].unique(), progress)
        return {name: self._count(name, rows, kind) for name, (rows, kind) in chosen.items()}

    def count(self, name: str) -> dict:
        """{recordings, windows, classes} of a named selection; DataError (one line) for one without a window or
        without a window of one of its classes."""
        return self._count(name, *self._selection_recordings(name))

    def _count(self, name: str, recordings: pd.DataFrame, kind: str | None) -> dict:
        _, _, starts, labels = self._gather(recordings, kind)
        if len(starts) == 0:
            raise DataError(f"{self.root}: selection {name} has no usable window in its {len(recordings)} "
                            f"recordings (all shorter than a window or broken by IK failures)")
        classes = {}
        if kind:
            names = list(self.vocab.classes(kind))
            classes = dict(zip(names, np.bincount(labels, minlength=len(names)).tolist()))
            missing = [cls for cls, n in classes.items() if n == 0]
            if missing:
                raise DataError(f"{self.root}: selection {name} has no window of class {missing[0]!r} of "
                                f"{self.vocab.ident} (classes without a window: {', '.join(missing)}); {VOCAB_FIX}")
        return {"recordings": len(recordings), "windows": len(starts), "classes": classes}

    def _scan(self, paths, progress=None) -> None:
        """Scan the recordings not in the index yet; raise DataError for the first one refused."""
        try:
            for done, path in enumerate(paths, 1):
                self._window_starts(path)
                if progress:
                    progress(done, len(paths))
        finally:
            self.save_index()

    def _window_starts(self, path: str) -> np.ndarray:
        verdict = self.scan(path)
        if isinstance(verdict, str):
            if not self.lenient:
                raise DataError(verdict)
            self.refusals[path] = verdict
            return np.zeros(0, dtype=np.int64)
        return verdict.starts

    def save_index(self) -> None:
        self._index.save()

    def scan(self, path: str) -> Scan | str:
        """A recording's scan verdict, from the index or from a scan (kept in the index by save_index)."""
        key = file_key(path)
        verdict = self._index.get(key)
        if verdict is None:
            verdict = scan_recording(path, self.spec.window, self.spec.stride)
            self._index.put(key, verdict)
        return verdict

    def _gather(self, recordings: pd.DataFrame, kind: str | None):
        """(paths, recording of each window, window starts, labels) of these recordings."""
        self._scan(recordings["path"])
        labels_of = self.vocab.stage_labels(kind) if kind else {}
        paths, rec, starts, labels = [], [], [], []
        for i, row in enumerate(recordings.itertuples()):
            s = self._window_starts(row.path)
            paths.append(row.path)
            rec.append(np.full(len(s), i))
            starts.append(s)
            labels.append(np.full(len(s), labels_of.get(row.stage, -1)))
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64))
        return paths, cat(rec), cat(starts), cat(labels)

    def windows(self, recordings: pd.DataFrame, kind: str | None = None) -> WindowDataset:
        """All IK-failure-free windows of these recordings, labelled with `kind`'s classes (or -1)."""
        return WindowDataset(*self._gather(recordings, kind), self.spec, self.stats, self.cache_dir)

    @functools.cached_property
    def stats(self) -> dict:
        """Normalisation statistics, measured when first needed (from recordings the scan accepts)."""
        rows = self.pretrain_recordings()
        if rows.empty:
            raise DataError(f"{self.root}: metadata.csv has no training recordings (split == 'train')")
        picks = rows["path"].iloc[evenly(len(rows))].tolist()
        self._scan(picks)  # no statistic from a recording the scan refuses
        return cached_stats(self.cache_dir, [file_key(p) for p in picks], lambda: self._measure_stats(picks))

    @staticmethod
    def _measure_stats(picks) -> dict:
        """Per-channel EMG RMS, per-joint angle mean and spread (IK-failure rows left out)."""
        emg_sq, pose_sum, pose_sq, n_emg, n_pose = 0.0, 0.0, 0.0, 0, 0
        for path in picks:
            with h5py.File(path, "r") as f:
                ts = f[schema.GROUP][schema.TIMESERIES]
                emg = ts.fields("emg")[:].astype(np.float64)
                angles = ts.fields("joint_angles")[:]
            angles = angles[~ik_failures(angles)]
            emg_sq = emg_sq + (emg ** 2).sum(0)
            n_emg += len(emg)
            pose_sum = pose_sum + angles.sum(0)
            pose_sq = pose_sq + (angles ** 2).sum(0)
            n_pose += len(angles)
        if n_pose == 0:
            raise DataError("the training recordings sampled for normalisation hold no valid (non-IK-failure) pose rows")
        return normalisation(emg_sq, n_emg, pose_sum, pose_sq, n_pose)




def open_data(d: Data, root: Path, cache_dir: Path | None = None, lenient: bool = False) -> Emg2PoseData:
    """The emg2pose-format dataset at `root` as the data section reads it (lenient: Emg2PoseData's)."""
    spec = WindowSpec(d.window, d.stride, d.pose_decimation, protocols.get(d.protocol))
    return Emg2PoseData(root, load_vocab(d.vocab), spec, cache_dir, d.allow_missing, lenient)
