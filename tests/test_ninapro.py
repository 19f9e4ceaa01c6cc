"""NinaPro DB2 as a dataset: both .mat layouts, finding the files (links, names, what is skipped), the within- and
cross-subject splits, the seen/unseen movement split, per-subject scores, the data check and runs end to end, on
small files written here in DB2's layout."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from conftest import tiny_args

from bench import plugins, suites
from bench.check.show import split_line
from bench.cli import preflight, selection
from bench.plugins import Embeddings, Method
from bench.run import fingerprint, planner
from bench.run.evaluation import evaluate
from bench.run.store import Store
from cpep.data.gestures import load_vocab
from cpep.data.mat import read_variables
from cpep.data.ninapro import MOVEMENTS, Split, discover, files_identity, read_recording, scan, vocab_movements
from cpep.data.ninapro_windows import TEST_REPETITIONS, TRAIN_REPETITIONS, NinaproData, _measure_stats
from cpep.data.windows import WindowSpec
from cpep.errors import ConfigError, DataError
from cpep.probes import balanced_accuracy, embed, linear_probe_predictions

CLI = [sys.executable, "-c", "from bench.cli import main; main()"]
SUBJECTS = (1, 2, 3)
TEST_MOVEMENTS = (1, 2, 3, 4)
REP, REST = 1600, 600  # rows of one repetition (0.8 s) and of the rest after it
VOCAB = """name = "ninapro-test"
version = 1
[in_distribution]
ThumbUp = [1]
ExtendIndexMiddle = [2]
[unseen]
FlexRingLittle = [3]
ThumbOpposeLittleBase = [4]
"""
SPEC = WindowSpec(400, 200, 10)
WINDOWS_PER_REP = 7  # starts 0, 200, ..., 1200 of a 1,600-row repetition
SETS = {"data.window": 400, "data.stride": 200, "emg.patch": 100, "pose.patch": 100}


def gains(movement: int) -> np.ndarray:
    """Each movement's EMG amplitude per channel: what makes its windows distinguishable."""
    return np.random.default_rng(100 + movement).uniform(0.2, 3.0, 12) if movement else np.full(12, 0.05)


def posture(movement: int) -> np.ndarray:
    return np.random.default_rng(200 + movement).uniform(0.0, 200.0, 22) if movement else np.full(22, 100.0)


def variables(subject: int) -> dict[str, np.ndarray]:
    """One exercise-1 file: rest, then each movement 6 times, rest after each repetition."""
    rng = np.random.default_rng(subject)
    pieces = [(0, 0, REST)] + [p for m in TEST_MOVEMENTS for r in range(1, 7) for p in ((m, r, REP), (0, 0, REST))]
    emg, glove, stim, rep = [], [], [], []
    for movement, repetition, rows in pieces:
        emg.append(rng.normal(size=(rows, 12)) * gains(movement) * 1e-4)
        glove.append(posture(movement) + rng.normal(scale=2.0, size=(rows, 22)))
        stim.append(np.full((rows, 1), movement, dtype=np.float64))
        rep.append(np.full((rows, 1), repetition, dtype=np.float64))
    extra = rng.normal(size=(sum(p[2] for p in pieces) + 3, 3))  # like acc: not read (and 3 rows longer)
    return {"emg": np.concatenate(emg), "glove": np.concatenate(glove).astype(np.float32),
            "restimulus": np.concatenate(stim), "rerepetition": np.concatenate(rep), "acc": extra,
            "subject": np.array([[subject]], dtype=np.float64)}


def save_v5(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, values, do_compression=True)


def save_v73(path: Path, values: dict) -> None:
    """As MATLAB's `save -v7.3` writes: HDF5 after a 512-byte header, each array transposed (column-major)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in values.items():
            d = f.create_dataset(name, data=np.asarray(value).T, compression="gzip")
            d.attrs["MATLAB_class"] = np.bytes_("double" if value.dtype == np.float64 else "single")
    with open(path, "r+b") as f:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        f.write(text.ljust(116) + b"\0" * 8 + b"\x00\x02IM")


def write_dataset(root: Path, save) -> Path:
    for s in SUBJECTS:
        save(root / f"DB2_s{s}" / f"S{s}_E1_A1.mat", variables(s))
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("ninapro")
    (base / "vocab.toml").write_text(VOCAB)
    return {"v5": write_dataset(base / "v5", save_v5), "v73": write_dataset(base / "v73", save_v73),
            "vocab": base / "vocab.toml"}


def open_data(root, vocab_path, cache=None, split=Split()) -> NinaproData:
    return NinaproData(root, load_vocab(str(vocab_path)), SPEC, cache, split)


def cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=1800)


def set_args(vocab_path) -> list[str]:
    args = tiny_args() + ["--set", f"data.vocab={vocab_path}"]
    for key, value in SETS.items():
        args += ["--set", f"{key}={value}"]
    return args


def check_args(vocab_path) -> list[str]:
    """`data check`'s settings: the vocabulary and the window, as `--set`."""
    return ["--set", f"data.vocab={vocab_path}", *[a for k, v in SETS.items() if k.startswith("data.")
                                                   for a in ("--set", f"{k}={v}")]]


@functools.lru_cache(maxsize=None)
def subject_in_file(path: str) -> int:
    """The subject a file says it holds (its own `subject` variable, not its name)."""
    return int(read_variables(Path(path), ("subject",))["subject"][0, 0])


def window_subjects(w) -> np.ndarray:
    return np.array([subject_in_file(w.paths[i]) for i in w.recording])


def segment_start(movement: int, repetition: int) -> int:
    """The first row of a repetition in the files `variables` writes."""
    return REST + (TEST_MOVEMENTS.index(movement) * 6 + repetition - 1) * (REP + REST)


def test_both_layouts_read_the_same_values(roots):
    a = read_recording(str(roots["v5"] / "DB2_s2" / "S2_E1_A1.mat"))
    b = read_recording(str(roots["v73"] / "DB2_s2" / "S2_E1_A1.mat"))
    expected = variables(2)
    rows = len(expected["restimulus"])  # acc is longer: the four fields read set the length
    assert a.emg.shape == (rows, 12) and a.glove.shape == (rows, 22)
    for field in ("emg", "glove", "movement", "repetition"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert np.array_equal(a.emg, expected["emg"].astype(np.float32))
    assert np.array_equal(a.movement, expected["restimulus"][:, 0].astype(np.int32))


def test_repetitions_1_3_4_6_train_and_2_5_test_and_windows_hold_one_repetition(roots, tmp_path):
    data = open_data(roots["v5"], roots["vocab"], tmp_path)
    expected = {"pretrain": ({1, 2}, TRAIN_REPETITIONS), "id_train": ({1, 2}, TRAIN_REPETITIONS),
                "id_test": ({1, 2}, TEST_REPETITIONS), "unseen_train": ({3, 4}, TRAIN_REPETITIONS),
                "unseen_test": ({3, 4}, TEST_REPETITIONS)}
    for name, (movements, repetitions) in expected.items():
        w = data.windows(name)
        assert set(w.movement.tolist()) == movements and set(w.repetition.tolist()) == set(repetitions)
        assert len(w.starts) == len(SUBJECTS) * len(movements) * len(repetitions) * WINDOWS_PER_REP
        if name == "pretrain":
            assert set(w.labels.tolist()) == {-1}
        else:
            assert np.array_equal(w.labels, (w.movement - min(movements)))  # classes in the vocabulary's order
        for i in range(len(w.starts)):  # every row of a window has its movement and repetition: no rest
            rec = read_recording(w.paths[w.recording[i]])
            rows = slice(w.starts[i], w.starts[i] + SPEC.window)
            assert set(rec.movement[rows].tolist()) == {w.movement[i]}
            assert set(rec.repetition[rows].tolist()) == {w.repetition[i]}
    counts = data.check_files()
    assert counts["unseen_test"]["classes"] == {"FlexRingLittle": 3 * 2 * 7, "ThumbOpposeLittleBase": 3 * 2 * 7}
    assert counts["pretrain"]["recordings"] == len(SUBJECTS)


def test_no_unseen_movement_reaches_pretraining(roots, tmp_path):
    data = open_data(roots["v5"], roots["vocab"], tmp_path)
    windows = data.selection("pretrain")
    # The EMG itself: each pre-training window's channel amplitudes are those of a seen movement.
    emg = np.stack([windows[i]["emg"].numpy() for i in range(len(windows))])
    rms = np.sqrt((emg.astype(np.float64) ** 2).mean(-1)) * np.asarray(data.stats["emg_std"])
    nearest = [min(TEST_MOVEMENTS, key=lambda m: np.abs(np.log(r / (gains(m) * 1e-4))).sum()) for r in rms]
    assert set(nearest) == {1, 2}
    assert windows[0]["pose"].shape == (22, SPEC.window // SPEC.pose_decimation)
    both = VOCAB.replace("ThumbOpposeLittleBase = [4]", "ThumbOpposeLittleBase = [4, 1]")
    (tmp_path / "both.toml").write_text(both)
    with pytest.raises(DataError, match="movement 1 is in two classes|both in-distribution and unseen"):
        open_data(roots["v5"], tmp_path / "both.toml")


def test_the_default_vocabulary_is_exercise_b_12_seen_and_5_unseen():
    vocab = load_vocab("ninapro-db2-v1")
    seen, unseen = vocab_movements(vocab, "id"), vocab_movements(vocab, "unseen")
    assert len(seen) == 12 and len(unseen) == 5 and not set(seen) & set(unseen)
    assert set(seen) | set(unseen) == set(MOVEMENTS[1])


def test_both_layouts_give_identical_windows(roots, tmp_path):
    v5, v73 = (open_data(roots[k], roots["vocab"], tmp_path / k) for k in ("v5", "v73"))
    assert v5.stats == v73.stats
    for name in ("pretrain", "id_train", "id_test", "unseen_train", "unseen_test"):
        a, b = v5.selection(name).packed(), v73.selection(name).packed()
        assert len(a) > 0
        for field in ("emg", "pose", "labels"):
            assert np.array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field))), (name, field)


def test_identity_follows_the_files(roots, tmp_path):
    root = shutil.copytree(roots["v5"], tmp_path / "copy")
    before = files_identity(root)
    assert [entry[0] for entry in before] == [f"DB2_s{s}/S{s}_E1_A1.mat" for s in SUBJECTS]
    save_v5(root / "DB2_s2" / "S2_E1_A1.mat", {**variables(2), "emg": variables(2)["emg"] * 2})
    after = files_identity(root)
    assert after[0] == before[0] and after[1] != before[1]


def test_the_readers_code_is_part_of_every_stage_key(roots):
    # A change to how the .mat files become windows must recompute every stage, as a change to cpep/data/emg2pose.py does.
    cfg = plugins.resolve({"data.name": "ninapro_db2", "data.root": str(roots["v5"])})
    covered = {p.name for p in fingerprint.closure(planner.code_files(cfg, []))}
    assert {"ninapro_db2.py", "ninapro.py", "ninapro_windows.py", "mat.py"} <= covered


def broken(roots, tmp_path, name="broken") -> Path:
    """A copy of the dataset whose subject 2 has NaN in its EMG and subject 3 too few glove sensors."""
    root = shutil.copytree(roots["v5"], tmp_path / name)
    values = variables(2)
    values["emg"][5000:5010, 3] = np.nan
    save_v5(root / "DB2_s2" / "S2_E1_A1.mat", values)
    save_v73(root / "DB2_s3" / "S3_E1_A1.mat", {**variables(3), "glove": variables(3)["glove"][:, :18]})
    return root


def test_a_file_without_rows_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "S1_E1_A1.mat"
    save_v5(path, {name: value[:0] for name, value in variables(1).items()})
    assert scan(str(path))["problem"].endswith("no rows (emg 0, glove 0, restimulus 0, rerepetition 0)")


def test_data_check_reports_the_dataset_and_each_unusable_file(roots, tmp_path):
    results = tmp_path / "results"
    ok = cli("data", "check", roots["v5"], "--data", "ninapro_db2", "--runs-dir", results,
             *check_args(roots["vocab"]))
    assert ok.returncode == 0, ok.stderr
    for line in ("files: 3 (3 readable), exercises 1; 0 skipped", "subjects: 3 (1-3)", "movements: 4 (1-4)",
                 "split: within_subject: repetitions 1, 3-4, 6 train and 2, 5 test, of every subject",
                 ": ok (ninapro-test-v1)"):
        assert line in ok.stdout
    hours = float(ok.stdout.split("hours: ")[1].split()[0])
    assert hours == pytest.approx(3 * (REST + 24 * (REP + REST)) / 2000 / 3600, abs=1e-3)

    bad = cli("data", "check", broken(roots, tmp_path), "--data", "ninapro_db2", "--set",
              f"data.vocab={roots['vocab']}", "--runs-dir", results)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ") and "2 of the 3 files" in bad.stderr
    problems = [line for line in bad.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2
    assert "S2_E1_A1.mat: emg is not finite in rows 5000-5009 (10 values)" in problems[0]
    assert "S3_E1_A1.mat: glove is " in problems[1] and "expected T x 22" in problems[1]
    assert "Traceback" not in bad.stderr

    embridge = cli("data", "check", roots["v5"], "--data", "ninapro_db2", "--set", "data.protocol=embridge",
                   "--runs-dir", results)
    assert embridge.returncode == 2 and "default protocol only" in embridge.stderr
    assert embridge.stderr.strip().count("\n") == 0


def test_a_run_end_to_end_and_never_on_nan(roots, tmp_path):
    results = tmp_path / "results"
    done = cli("run", "--suite", "smoke", "--data", "ninapro_db2", "--data-root", roots["v73"],
               "--runs-dir", results, *set_args(roots["vocab"]))
    assert done.returncode == 0, done.stdout + done.stderr
    records = {p.parent.name: json.loads(p.read_text()) for p in results.glob("runs/**/seed-0.json")}
    assert set(records) == {"cpep", "pose_mae", "emg_log_power", "pose_features"}
    assert all(r["status"] == "done" and r["dataset"] == "ninapro_db2" for r in records.values())
    assert set(records["cpep"]["metrics"]) == {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}
    assert all(0.0 <= v <= 1.0 for v in records["cpep"]["metrics"].values())
    # Each movement has its own EMG amplitudes: the log-power floor tells the classes apart, so the windows carry
    # the labels of the rows they hold.
    floor = records["emg_log_power"]["metrics"]
    assert floor["lp_id"] >= 0.95 and floor["lp_unseen"] >= 0.95
    # Within subjects every subject is tested: one score per subject, for the probes and zero-shot alike.
    for r in records.values():
        assert r["config"]["data"]["ninapro"]["split"] == "within_subject"
        assert {metric: set(by_user) for metric, by_user in r["by_user"].items()} == {
            metric: {"1", "2", "3"} for metric in r["metrics"] if r["metrics"][metric] is not None}

    refused = cli("run", "--suite", "smoke", "--data", "ninapro_db2", "--data-root", broken(roots, tmp_path),
                  "--runs-dir", tmp_path / "refused", *set_args(roots["vocab"]))
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "emg is not finite" in refused.stderr and not (tmp_path / "refused" / "runs").exists()


# ------------------------------------------------------------------ splits

def expected_windows(subjects, movements, repetitions) -> list[tuple[int, int, int, int]]:
    """(subject, movement, repetition, first row) of every window, from the layout `variables` writes."""
    return sorted((s, m, r, segment_start(m, r) + k * SPEC.stride) for s in subjects for m in movements
                  for r in repetitions for k in range(WINDOWS_PER_REP))


def found_windows(w) -> list[tuple[int, int, int, int]]:
    return sorted(zip(window_subjects(w).tolist(), w.movement.tolist(), w.repetition.tolist(), w.starts.tolist()))


def test_within_subject_is_the_default_and_reads_the_windows_it_always_read(roots, tmp_path):
    default, within = (open_data(roots["v5"], roots["vocab"], tmp_path / name, split) for name, split in
                       (("default", Split()), ("within", Split("within_subject", test_subjects=2))))
    seen, unseen = (1, 2), (3, 4)
    for name, movements, repetitions in (("pretrain", seen, TRAIN_REPETITIONS), ("id_train", seen, TRAIN_REPETITIONS),
                                         ("id_test", seen, TEST_REPETITIONS),
                                         ("unseen_train", unseen, TRAIN_REPETITIONS),
                                         ("unseen_test", unseen, TEST_REPETITIONS)):
        expected = expected_windows(SUBJECTS, movements, repetitions)
        assert found_windows(default.windows(name)) == expected, name
        assert found_windows(within.windows(name)) == expected, name  # test_subjects means nothing here
    assert default.stats == within.stats


def test_cross_subject_tests_the_last_subjects_and_nothing_else_reads_them(roots, tmp_path):
    for held_out in (1, 2):
        data = open_data(roots["v5"], roots["vocab"], tmp_path / str(held_out), Split("cross_subject", held_out))
        train, test = SUBJECTS[:-held_out], SUBJECTS[-held_out:]
        assert (data.train_subjects, data.test_subjects) == (list(train), list(test))
        for name, movements in (("pretrain", (1, 2)), ("id_train", (1, 2)), ("unseen_train", (3, 4)),
                                ("id_test", (1, 2)), ("unseen_test", (3, 4))):
            w = data.windows(name)
            subjects = train if name.endswith("train") else test
            assert set(window_subjects(w).tolist()) == set(subjects), name
            assert found_windows(w) == expected_windows(subjects, movements, range(1, 7)), name
            assert data.window_groups(name)["user"].tolist() == [str(s) for s in window_subjects(w)]
    assert split_line(data) == ("cross_subject: subjects 1 pre-train and train the probes, 2-3 only test them "
                                "(data.ninapro.test_subjects=2)")
    # Normalisation comes from what pre-training reads: here subject 1's repetitions 1-6 of movements 1 and 2.
    segments = np.array([[segment_start(m, r), segment_start(m, r) + REP, m, r] for m in (1, 2) for r in range(1, 7)])
    expected = _measure_stats([(str(roots["v5"] / "DB2_s1" / "S1_E1_A1.mat"), segments)])
    for key, value in data.stats.items():
        assert np.allclose(value, expected[key], rtol=1e-6), key


def test_a_cross_subject_split_without_training_or_test_subjects_is_refused(roots, tmp_path):
    with pytest.raises(ConfigError, match="test_subjects=3 holds out all 3 subjects found"):
        open_data(roots["v5"], roots["vocab"], tmp_path, Split("cross_subject", 3))
    base = {"data.name": "ninapro_db2", "data.root": str(roots["v5"])}
    with pytest.raises(ConfigError, match="data.ninapro.test_subjects must be >= 1, not 0"):
        plugins.resolve(base | {"data.ninapro.split": "cross_subject", "data.ninapro.test_subjects": 0})
    with pytest.raises(ConfigError, match="data.ninapro.split takes 'within_subject' or 'cross_subject'"):
        plugins.resolve(base | {"data.ninapro.split": "by_subject"})
    refused = cli("data", "check", roots["v5"], "--data", "ninapro_db2", "--runs-dir", tmp_path / "results",
                  "--set", "data.ninapro.split=cross_subject", "--set", "data.ninapro.test_subjects=5",
                  *check_args(roots["vocab"]))
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert refused.stderr.startswith("error: data.ninapro.test_subjects=5 holds out all 3 subjects found")


def test_the_split_is_part_of_the_identity_and_of_every_stage_key(roots):
    def plan(**sets):
        return planner.plan(suites.load("smoke"), overrides={"data.name": "ninapro_db2",
                                                              "data.root": str(roots["v5"]), **sets})

    def keys(runs):
        return {s.key for r in runs for s in r.stages}

    within, cross = plan(), plan(**{"data.ninapro.split": "cross_subject", "data.ninapro.test_subjects": 1})
    assert keys(within) and not keys(within) & keys(cross)
    # The split's section is hashed whole: test_subjects re-keys a within-subject plan too, which does not read it
    # (a needless recomputation, never a wrong reuse).
    assert not keys(plan(**{"data.ninapro.test_subjects": 2})) & keys(within)
    other = plan(**{"data.ninapro.split": "cross_subject", "data.ninapro.test_subjects": 2})
    assert not keys(other) & keys(cross)
    assert cross[0].config["data"]["ninapro"] == {"split": "cross_subject", "test_subjects": 1}
    ident = plugins.get("dataset", "ninapro_db2").identity(cross[0].config)
    assert ident["split"] == {"name": "cross_subject", "test_subjects": 1}


# ------------------------------------------------------------------ per-subject scores

class ChannelPower(Method):
    """An LP on the log power of one EMG channel: no training, and a score that differs between subjects."""

    def embeddings(self, cfg, data, models):
        return Embeddings(torch.nn.Identity(), lp=lambda batch: batch["emg"].pow(2).mean(-1)[:, 2:3].log())


def test_each_subjects_score_is_the_balanced_accuracy_of_its_own_windows(roots, tmp_path):
    cfg = plugins.resolve({"data.name": "ninapro_db2", "data.root": str(roots["v5"]),
                           "data.vocab": str(roots["vocab"]), **SETS})
    data = open_data(roots["v5"], roots["vocab"], tmp_path)
    assert plugins.get("dataset", "ninapro_db2").per_user and hasattr(data, "window_groups")
    values, _, found = evaluate(cfg, data, torch.device("cpu"), ChannelPower(), {})
    lp = cfg["linear_probe"]
    for kind in ("id", "unseen"):
        n = len(data.vocab.classes(kind))
        train, test = (embed(ChannelPower().embeddings(cfg, data, {}).lp, data.selection(f"{kind}_{side}"),
                             torch.device("cpu")) for side in ("train", "test"))
        pred = linear_probe_predictions(*train, test[0], n, lp["weight_decay"], lp["max_iter"])
        w = data.windows(f"{kind}_test")
        named = np.array([int(re.match(r"S(\d+)_", Path(w.paths[i]).name)[1]) for i in w.recording])
        expected = {str(s): balanced_accuracy(pred[torch.from_numpy(named == s)], test[1][named == s], n)
                    for s in SUBJECTS}
        assert found["by_user"][f"lp_{kind}"] == pytest.approx(expected, abs=1e-9)
        assert values[f"lp_{kind}"] == pytest.approx(balanced_accuracy(pred, test[1], n), abs=1e-9)
    assert len(set(found["by_user"]["lp_id"].values())) > 1  # the subjects' scores differ: the check can fail


class Anonymous:
    """A dataset that cannot say whose each window is: the selections and vocabulary of another, no window_groups."""

    def __init__(self, data):
        self.vocab, self.selection = data.vocab, data.selection


def test_a_dataset_that_cannot_say_whose_windows_they_are_is_scored_without_a_breakdown(roots, tmp_path):
    assert plugins.Dataset.per_user is False
    assert all(plugins.get("dataset", name).per_user for name in ("synthetic", "emg2pose", "ninapro_db2"))
    cfg = plugins.resolve({"data.name": "ninapro_db2", "data.root": str(roots["v5"]),
                           "data.vocab": str(roots["vocab"]), **SETS})
    data = open_data(roots["v5"], roots["vocab"], tmp_path)
    values, _, found = evaluate(cfg, Anonymous(data), torch.device("cpu"), ChannelPower(), {})
    assert found == {}
    assert values == evaluate(cfg, data, torch.device("cpu"), ChannelPower(), {})[0]


def test_a_cross_subject_run_records_the_held_out_subjects_scores(roots, tmp_path):
    results = tmp_path / "results"
    done = cli("run", "--suite", "smoke", "--variants", "emg_log_power", "--data", "ninapro_db2",
               "--data-root", roots["v5"], "--runs-dir", results, *set_args(roots["vocab"]),
               "--set", "data.ninapro.split=cross_subject", "--set", "data.ninapro.test_subjects=2")
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = [json.loads(p.read_text()) for p in results.glob("runs/**/seed-0.json")]
    assert record["status"] == "done"
    assert record["config"]["data"]["ninapro"] == {"split": "cross_subject", "test_subjects": 2}
    assert {metric: set(by_user) for metric, by_user in record["by_user"].items()} == {
        "lp_id": {"2", "3"}, "lp_unseen": {"2", "3"}}


# ------------------------------------------------------------------ finding the files

def linked_layout(roots, tmp_path) -> Path:
    """The three subjects' files reached through links, beside .mat files that are not read:

        root/DB2_s1/S1_E1_A1.mat          a plain file
        root/DB2_s1/up -> root            a link back up the tree
        root/linked -> elsewhere/DB2_s2   a linked folder, holding S2_E1_A1.mat
        root/mixed/s3_e1_a1.MAT -> elsewhere/S3_E1_A1.mat   a linked file, its name in other cases
        root/copies/S1_E1_A1.mat -> root/DB2_s1/S1_E1_A1.mat   a second path to subject 1's file
        root/S4_E1_A1.mat -> nowhere.mat, root/S1_A1_E1.mat (DB1's naming), root/S5_E4_A1.mat, root/notes.txt
    """
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "DB2_s1").mkdir(parents=True)
    for folder in ("mixed", "copies"):
        (root / folder).mkdir()
    shutil.copy(roots["v5"] / "DB2_s1" / "S1_E1_A1.mat", root / "DB2_s1")
    shutil.copytree(roots["v5"] / "DB2_s2", elsewhere / "DB2_s2")
    shutil.copy(roots["v5"] / "DB2_s3" / "S3_E1_A1.mat", elsewhere)
    os.symlink(root, root / "DB2_s1" / "up")
    os.symlink(elsewhere / "DB2_s2", root / "linked")
    os.symlink(elsewhere / "S3_E1_A1.mat", root / "mixed" / "s3_e1_a1.MAT")
    os.symlink(root / "DB2_s1" / "S1_E1_A1.mat", root / "copies" / "S1_E1_A1.mat")
    os.symlink(tmp_path / "nowhere.mat", root / "S4_E1_A1.mat")
    shutil.copy(roots["v5"] / "DB2_s1" / "S1_E1_A1.mat", root / "S1_A1_E1.mat")
    shutil.copy(roots["v5"] / "DB2_s1" / "S1_E1_A1.mat", root / "S5_E4_A1.mat")
    (root / "notes.txt").write_text("not a recording")
    return root


def test_discovery_follows_links_matches_any_case_and_lists_what_it_skips(roots, tmp_path):
    root = linked_layout(roots, tmp_path)
    found = discover(root)
    assert [(f.subject, Path(f.path).relative_to(root).as_posix()) for f in found.files] == [
        (1, "DB2_s1/S1_E1_A1.mat"), (2, "linked/S2_E1_A1.mat"), (3, "mixed/s3_e1_a1.MAT")]
    assert [subject_in_file(f.path) for f in found.files] == [1, 2, 3]
    skipped = {Path(path).relative_to(root).as_posix(): why for path, why in found.skipped}
    assert skipped == {
        "S1_A1_E1.mat": "not named S<subject>_E<exercise>_A1.mat",
        "S4_E1_A1.mat": "a link to nothing",
        "S5_E4_A1.mat": "exercise 4, but NinaPro DB2 has exercises 1-3",
        "copies/S1_E1_A1.mat": f"the same file as {root / 'DB2_s1' / 'S1_E1_A1.mat'}"}
    # The linked layout reads the windows of the plain one.
    linked, plain = open_data(root, roots["vocab"], tmp_path / "a"), open_data(roots["v5"], roots["vocab"],
                                                                               tmp_path / "b")
    for name in ("pretrain", "id_test"):
        assert found_windows(linked.windows(name)) == found_windows(plain.windows(name))
    assert [entry[0] for entry in files_identity(root)] == [
        "DB2_s1/S1_E1_A1.mat", "linked/S2_E1_A1.mat", "mixed/s3_e1_a1.MAT"]

    checked = cli("data", "check", root, "--data", "ninapro_db2", "--runs-dir", tmp_path / "results",
                  *check_args(roots["vocab"]))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "files: 3 (3 readable), exercises 1; 4 skipped" in checked.stdout
    lines = [line for line in checked.stdout.splitlines() if line.startswith("skipped: ")]
    assert sorted(lines) == sorted(f"skipped: {root / path}: {why}" for path, why in skipped.items())


def test_a_run_says_how_many_files_it_skips(roots, tmp_path, capsys):
    root = linked_layout(roots, tmp_path)
    runs = selection("smoke", "ninapro_db2", root, "0", "emg_log_power",
                     [f"{key}={value}" for key, value in {**SETS, "data.vocab": roots["vocab"]}.items()], "cpu")
    preflight(runs, Store(tmp_path / "results"))
    out = capsys.readouterr().out
    assert f"4 file(s) under {root} skipped, e.g. {root / 'S1_A1_E1.mat'}: not named" in out
    assert "`cpep-bench data check` lists them all" in out


def test_two_different_files_of_one_subject_and_exercise_are_refused(roots, tmp_path):
    root = shutil.copytree(roots["v5"], tmp_path / "root")
    shutil.copy(roots["v5"] / "DB2_s2" / "S2_E1_A1.mat", root / "DB2_s1" / "s2_e1_a1.mat")
    with pytest.raises(DataError, match="two files of subject 2, exercise 1: .* and .* \\(keep one\\)"):
        discover(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(roots["v5"] / "DB2_s1" / "S1_E1_A1.mat", empty / "S1_A1_E1.mat")
    with pytest.raises(DataError, match="holds no S\\*_E\\*_A1.mat file \\(1 .mat file\\(s\\) skipped, e.g. "
                                        ".*S1_A1_E1.mat: not named"):
        discover(empty)
