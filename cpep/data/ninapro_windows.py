"""A NinaPro DB2 dataset with the selections the CPEP protocol uses (the files themselves: cpep.data.ninapro).

- Classes are movements, named by number in a gesture vocabulary (cpep/data/vocab/ninapro-db2-v1.toml): each class
  lists the movements (restimulus values) whose windows carry it.
- Windows start every `stride` samples from the first row of each repetition of a movement and lie wholly inside
  it: no window holds rest, another movement or another repetition.
- Two splits (`data.ninapro.split`, Split):
  - `within_subject` (the default): repetitions 1, 3, 4 and 6 train and 2 and 5 test (the split of Pizzolato et
    al. 2017), for every subject. Pre-training reads the training repetitions of the in-distribution movements
    only: no unseen movement and no test repetition. The probes of a class set train on its training repetitions
    and test on its test repetitions, of the same subjects.
  - `cross_subject`: the last `test_subjects` subjects found (the highest numbers) are held out: the probes test on
    their repetitions 1-6 and nothing else reads them. Pre-training reads repetitions 1-6 of the in-distribution
    movements of the other subjects, and the probes train on repetitions 1-6 of those.
- Normalisation as for emg2pose: per-channel EMG RMS and per-sensor glove mean and spread, measured on the rows
  pre-training reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpep.config import digest
from cpep.data.emg2pose import SELECTIONS, VOCAB_FIX
from cpep.data.gestures import Vocab
from cpep.data.ninapro import (
    CHANNELS,
    GLOVE,
    MatFile,
    ScanIndex,
    Split,
    discover,
    exercise_of,
    read_recording,
    vocab_movements,
)
from cpep.data.recordings import file_key
from cpep.data.windows import WindowDataset, WindowSpec, cached_stats, evenly, normalisation
from cpep.errors import ConfigError, DataError

TRAIN_REPETITIONS = (1, 3, 4, 6)
TEST_REPETITIONS = (2, 5)
ALL_REPETITIONS = (1, 2, 3, 4, 5, 6)  # cross_subject: every repetition, on either side of the split


@dataclass(frozen=True)
class Windows:
    """Where a selection's windows are: files, and per window its file (index into paths), first row, label
    (-1: none), movement, repetition and subject."""
    paths: list[str]
    recording: np.ndarray
    starts: np.ndarray
    labels: np.ndarray
    movement: np.ndarray
    repetition: np.ndarray
    subject: np.ndarray


class MatWindows(WindowDataset):
    """Windows of NinaPro .mat files: each file is read whole and the last two read are kept (cpep.data.ninapro)."""

    def rows(self, path: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        rec = read_recording(path)
        return rec.emg[start:stop], rec.glove[start:stop]


class NinaproData:
    """A NinaPro DB2 dataset on disk. With a `cache_dir`, scan verdicts, statistics and packed windows are kept
    there and reused."""

    channels = CHANNELS
    pose_dims = GLOVE

    def __init__(self, root: Path, vocab: Vocab, spec: WindowSpec, cache_dir: Path | None = None,
                 split: Split = Split()):
        if spec.window % spec.pose_decimation:
            raise DataError(f"window ({spec.window}) must be a multiple of pose decimation ({spec.pose_decimation})")
        self.root, self.vocab, self.spec, self.split = Path(root).resolve(), vocab, spec, split
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        found = discover(self.root)
        self.files, self.skipped = found.files, found.skipped
        self.movements = {kind: vocab_movements(vocab, kind) for kind in ("id", "unseen")}
        both = sorted(set(self.movements["id"]) & set(self.movements["unseen"]))
        if both:  # an unseen class would reach pre-training
            raise DataError(f"gesture vocabulary {vocab.ident}: movement {both[0]} is both in-distribution and "
                            f"unseen")
        exercises = {exercise_of(m) for kind in self.movements.values() for m in kind}
        self.recordings = [f for f in self.files if f.exercise in exercises]
        if not self.recordings:
            raise DataError(f"{self.root}: no file of exercise {', '.join(map(str, sorted(exercises)))}, which the "
                            f"movements of {vocab.ident} belong to")
        self.train_subjects, self.test_subjects = self._subjects()
        index_file = None
        if self.cache_dir is not None:
            index_file = self.cache_dir / f"ninapro-scan-{digest(str(self.root))}.json"
        self._index = ScanIndex(index_file)

    def _subjects(self) -> tuple[list[int], list[int]]:
        """(training, test) subjects: all of them on both sides within subjects; across subjects, the last
        `test_subjects` found are tested and the others train. ConfigError when a side would be empty."""
        subjects = sorted({f.subject for f in self.recordings})
        if self.split.name == "within_subject":
            return subjects, subjects
        n = self.split.test_subjects
        if n >= len(subjects):
            raise ConfigError(f"data.ninapro.test_subjects={n} holds out all {len(subjects)} subjects found in "
                              f"{self.root}, leaving none to train on: hold out fewer than {len(subjects)}")
        return subjects[:-n], subjects[-n:]

    # ------------------------------------------------------------ scanning

    def verdicts(self, files: list[MatFile], progress=None) -> list[dict]:
        """Each file's scan verdict (cpep.data.ninapro.scan), scanning those not in the index yet."""
        out = []
        try:
            for done, f in enumerate(files, 1):
                out.append(self._index.verdict(f.path))
                if progress:
                    progress(done, len(files))
        finally:
            self._index.save()
        return out

    def _segments(self, progress=None) -> list[np.ndarray]:
        """The segments (start, stop, movement, repetition) of every file the protocol reads; DataError for the
        first file refused."""
        out = []
        for f, verdict in zip(self.recordings, self.verdicts(self.recordings, progress)):
            if "problem" in verdict:
                raise DataError(verdict["problem"])
            out.append(np.asarray(verdict["segments"], dtype=np.int64).reshape(-1, 4))
        return out

    # ------------------------------------------------------------ selections

    def _plan(self, name: str) -> tuple[dict[int, int], tuple[int, ...], list[int], bool]:
        """(movement -> label, repetitions, subjects, labelled) of a named selection."""
        if name == "pretrain":
            kind, side = "id", "train"
        else:
            kind, side = name.rsplit("_", 1)
            if kind not in self.movements or side not in ("train", "test"):
                raise ValueError(f"unknown selection {name!r} (one of {', '.join(SELECTIONS)})")
        subjects = self.train_subjects if side == "train" else self.test_subjects
        if self.split.name == "cross_subject":
            repetitions = ALL_REPETITIONS
        else:
            repetitions = TRAIN_REPETITIONS if side == "train" else TEST_REPETITIONS
        return self.movements[kind], repetitions, subjects, name != "pretrain"

    def windows(self, name: str) -> Windows:
        """Where the windows of a named selection are: "pretrain", or "<id|unseen>_<train|test>"."""
        labels_of, repetitions, subjects, labelled = self._plan(name)
        window, stride = self.spec.window, self.spec.stride
        paths, parts = [], []
        for f, segments in zip(self.recordings, self._segments()):
            if f.subject not in subjects:
                continue
            chosen = segments[np.isin(segments[:, 2], list(labels_of)) & np.isin(segments[:, 3], repetitions)]
            starts = [np.arange(a, b - window + 1, stride) for a, b, _, _ in chosen]
            count = np.array([len(s) for s in starts], dtype=np.int64)
            if not count.sum():
                continue
            movement = np.repeat(chosen[:, 2], count)
            labels = np.array([labels_of[m] for m in movement]) if labelled else np.full(len(movement), -1)
            parts.append((np.full(len(movement), len(paths)), np.concatenate(starts), labels, movement,
                          np.repeat(chosen[:, 3], count), np.full(len(movement), f.subject)))
            paths.append(f.path)
        columns = zip(*parts) if parts else [[np.zeros(0)]] * 6
        return Windows(paths, *(np.concatenate(c).astype(np.int64) for c in columns))

    def selection(self, name: str) -> MatWindows:
        w = self.windows(name)
        return MatWindows(w.paths, w.recording, w.starts, w.labels, self.spec, self.stats, self.cache_dir)

    def window_groups(self, name: str) -> dict[str, np.ndarray]:
        """Per window of a named selection, in its order, its `user`: the subject's number, as a string."""
        return {"user": np.array([str(s) for s in self.windows(name).subject], dtype=object)}

    def check_files(self, progress=None) -> dict[str, dict]:
        """Scan every file the protocol reads and count each selection's windows, before any work starts: DataError
        (one line) for the first refused file, and for a selection without a window of one of its classes.
        Returns {selection: {recordings, windows, classes}}, classes being the window count of each class."""
        self._segments(progress)
        counts = {}
        for name in SELECTIONS:
            w = self.windows(name)
            if len(w.starts) == 0:
                raise DataError(f"{self.root}: selection {name} has no window (every repetition of its movements "
                                f"is shorter than a window, {self.spec.window} samples)")
            classes = {}
            if name != "pretrain":
                names = list(self.vocab.classes(name.rsplit("_", 1)[0]))
                classes = dict(zip(names, np.bincount(w.labels, minlength=len(names)).tolist()))
                missing = [cls for cls, n in classes.items() if n == 0]
                if missing:
                    raise DataError(f"{self.root}: selection {name} has no window of class {missing[0]!r} of "
                                    f"{self.vocab.ident} (classes without a window: {', '.join(missing)}); "
                                    f"{VOCAB_FIX}")
            counts[name] = {"recordings": len(w.paths), "windows": len(w.starts), "classes": classes}
        return counts

    # ------------------------------------------------------------ normalisation

    @functools.cached_property
    def stats(self) -> dict:
        """Per-channel EMG RMS and per-sensor glove mean and spread over the rows of the pre-training segments of
        up to STATS_FILES files (evenly chosen), measured when first needed."""
        labels_of, repetitions, subjects, _ = self._plan("pretrain")
        picks = []
        for f, segments in zip(self.recordings, self._segments()):
            if f.subject not in subjects:
                continue
            chosen = segments[np.isin(segments[:, 2], list(labels_of)) & np.isin(segments[:, 3], repetitions)]
            if len(chosen):
                picks.append((f.path, chosen))
        if not picks:
            raise DataError(f"{self.root}: no repetition {', '.join(map(str, repetitions))} of an "
                            f"in-distribution movement of {self.vocab.ident} in the training subjects' "
                            f"files: nothing to pre-train on")
        picks = [picks[i] for i in evenly(len(picks))]
        return cached_stats(self.cache_dir, [[file_key(p), s.tolist()] for p, s in picks],
                            lambda: _measure_stats(picks))


def _measure_stats(picks: list[tuple[str, np.ndarray]]) -> dict:
    emg_sq, pose_sum, pose_sq, n = 0.0, 0.0, 0.0, 0
    for path, segments in picks:
        rec = read_recording(path)
        rows = np.concatenate([np.arange(a, b) for a, b, _, _ in segments])
        emg, glove = rec.emg[rows].astype(np.float64), rec.glove[rows].astype(np.float64)
        emg_sq = emg_sq + (emg ** 2).sum(0)
        pose_sum = pose_sum + glove.sum(0)
        pose_sq = pose_sq + (glove ** 2).sum(0)
        n += len(rows)
    return normalisation(emg_sq, n, pose_sum, pose_sq, n)
