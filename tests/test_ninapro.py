"""NinaPro DB2 as a dataset: both .mat layouts, the repetition split, the seen/unseen movement split, the data
check and a run end to end, on small files written here in DB2's layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from conftest import tiny_args

from bench import plugins
from bench.run import fingerprint, planner
from cpep.data.gestures import load_vocab
from cpep.data.ninapro import MOVEMENTS, files_identity, read_recording, scan, vocab_movements
from cpep.data.ninapro_windows import TEST_REPETITIONS, TRAIN_REPETITIONS, NinaproData
from cpep.data.windows import WindowSpec
from cpep.errors import DataError

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


def open_data(root, vocab_path, cache=None) -> NinaproData:
    return NinaproData(root, load_vocab(str(vocab_path)), SPEC, cache)


def cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=1800)


def set_args(vocab_path) -> list[str]:
    args = tiny_args() + ["--set", f"data.vocab={vocab_path}"]
    for key, value in SETS.items():
        args += ["--set", f"{key}={value}"]
    return args


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
    assert {"ninapro_db2.py", "ninapro.py", "ninapro_data.py", "mat.py"} <= covered


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
    ok = cli("data", "check", roots["v5"], "--data", "ninapro_db2", "--vocab", roots["vocab"],
             "--runs-dir", results, *[a for k, v in SETS.items() if k.startswith("data.")
                                         for a in ("--set", f"{k}={v}")])
    assert ok.returncode == 0, ok.stderr
    for line in ("files: 3 (3 readable), exercises 1", "subjects: 3 (1-3)", "movements: 4 (1-4)",
                 ": ok (ninapro-test-v1)"):
        assert line in ok.stdout
    hours = float(ok.stdout.split("hours: ")[1].split()[0])
    assert hours == pytest.approx(3 * (REST + 24 * (REP + REST)) / 2000 / 3600, abs=1e-3)

    bad = cli("data", "check", broken(roots, tmp_path), "--data", "ninapro_db2", "--vocab", roots["vocab"],
              "--runs-dir", results)
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

    refused = cli("run", "--suite", "smoke", "--data", "ninapro_db2", "--data-root", broken(roots, tmp_path),
                  "--runs-dir", tmp_path / "refused", *set_args(roots["vocab"]))
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "emg is not finite" in refused.stderr and not (tmp_path / "refused" / "runs").exists()
