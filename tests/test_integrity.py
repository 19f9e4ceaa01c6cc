"""Bad input is refused at the door, in one line, before anything is written: bad values in a recording, split
leaks in metadata.csv, selections without windows. The scan that finds them reads each recording once."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_args
from test_cli import assert_one_line_error, cli

from cpep.data import recordings as recordings_module
from cpep.data import schema
from cpep.data.emg2pose import Emg2PoseData
from cpep.data.gestures import load_vocab
from cpep.data.recordings import scan_recording, valid_window_starts
from cpep.data.windows import WindowSpec
from cpep.errors import DataError
from cpep.synth import simulator
from cpep.synth.config import SynthConfig

SPEC = WindowSpec(window=2000, stride=1000, pose_decimation=10)
VOCAB = load_vocab("synthetic-v1")


def linked_copy(src, dst):
    """A copy of the dataset whose recordings are links to the original's (rewrite() replaces one)."""
    dst.mkdir()
    for path in src.iterdir():
        if path.suffix == ".hdf5":
            (dst / path.name).symlink_to(path)
        else:
            shutil.copy(path, dst / path.name)
    return dst


def recordings(root, stage, test_user):
    meta = pd.read_csv(root / "metadata.csv")
    rows = meta[(meta["stage"] == stage) & (meta["held_out_user"] == test_user)]
    return [root / f"{name}.hdf5" for name in rows["filename"]]


def rewrite(path, change=lambda rows: rows, drop_attr=None):
    """Write the recording again with change(rows) as its rows (the original behind the link is left alone)."""
    with h5py.File(path, "r") as f:
        rows, attrs = f["emg2pose/timeseries"][:], dict(f["emg2pose"].attrs)
    attrs.pop(drop_attr, None)
    path.unlink()
    simulator.write_recording(path, change(rows), attrs)


def set_values(field, index, value):
    def change(rows):
        rows[field][index] = value
        return rows
    return change


def emg_as(dtype):
    def change(rows):
        wanted = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,)), ("emg", dtype, (16,))])
        out = np.empty(len(rows), dtype=wanted)
        out["time"], out["joint_angles"] = rows["time"], rows["joint_angles"]
        out["emg"] = (rows["emg"] * 1e6).astype(dtype)
        return out
    return change


def edit_metadata(root, stage, test_user, **values):
    meta = pd.read_csv(root / "metadata.csv")
    row = meta.index[(meta["stage"] == stage) & (meta["held_out_user"] == test_user)][0]
    for column, value in values.items():
        meta[column] = meta[column].astype(object)
        meta.loc[row, column] = value
    meta.to_csv(root / "metadata.csv", index=False)


def spoil_last_read(change=lambda rows: rows, drop_attr=None):
    """Rewrite a recording that only the last evaluation reads (the test user's Claw)."""
    return lambda root: rewrite(recordings(root, "Claw", test_user=True)[0], change, drop_attr)


def too_short(rows):
    return rows[:SPEC.window - 1]


def header_only(root):
    csv = root / "metadata.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")


# Each bad input: (what it does to a linked copy of the tiny dataset, the text of the one-line refusal).
BAD_INPUTS = {
    "nan in emg": (spoil_last_read(set_values("emg", ([120, 125, 130], 3), np.nan)),
                   "emg is not finite in rows 120-130 (3 values)"),
    "inf in angles": (spoil_last_read(set_values("joint_angles", (4000, 5), np.inf)),
                      "joint_angles is not finite in row 4000 (1 value)"),
    "time going back": (spoil_last_read(set_values("time", 501, 0.0)), "time goes backwards in row 501 (1 value)"),
    "missing attribute": (spoil_last_read(drop_attr="start"), "lacks the attributes start"),
    "emg as float64": (spoil_last_read(emg_as("<f8")),
                       "emg is stored as float64, not float32 as emg2pose writes it; refused"),
    "emg as int16": (spoil_last_read(emg_as("<i2")), "emg is stored as int16, not float32"),
    "held-out user in train": (lambda root: edit_metadata(root, "Fist", True, split="train"),
                               "1 recording of held-out users in split 'train'"),
    "held-out stage in train": (lambda root: edit_metadata(root, "Peace", False, split="train"),
                                "1 recording of held-out stages in split 'train'"),
    "unseen class in pre-training": (lambda root: edit_metadata(root, "Peace", False, split="train",
                                                                held_out_stage=False),
                                     "1 recording of unseen-class stages of synthetic-v1 in split 'train'"),
    "not a boolean": (lambda root: edit_metadata(root, "Fist", False, held_out_user="yes"),
                      "held_out_user must be true or false, not 'yes'"),
    "not a hand": (lambda root: edit_metadata(root, "Fist", False, moving_hand="one"),
                   "moving_hand must be both, left or right, not 'one'"),
    "test recordings too short": (
        lambda root: [rewrite(p, too_short) for s in VOCAB.unseen for p in recordings(root, s, True)],
        "selection unseen_test has no usable window"),
    "test recordings all IK failures": (
        lambda root: [rewrite(p, set_values("joint_angles", slice(None), 0.0))
                      for s in VOCAB.unseen for p in recordings(root, s, True)],
        "selection unseen_test has no usable window"),
    "metadata without rows": (header_only, "metadata.csv lists no recordings (a header and no rows)"),
    "a class without a test window": (
        lambda root: rewrite(recordings(root, "Fist", True)[0], set_values("joint_angles", slice(None), 0.0)),
        "selection id_test has no window of class 'Fist'"),
}

COMMANDS = {
    "run": lambda root: ["run", "--suite", "smoke", "--data", "emg2pose", "--data-root", root,
                         "--set", "data.vocab=synthetic-v1", *tiny_args()],
    "data check": lambda root: ["data", "check", root],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_bad_input_is_refused_in_one_line_before_anything_is_written(tmp_path, tiny_data, bad, command):
    root = linked_copy(tiny_data, tmp_path / "data")
    spoil, text = BAD_INPUTS[bad]
    spoil(root)
    results = tmp_path / "results"
    result = cli(*COMMANDS[command](root), "--runs-dir", results, check=False)
    assert_one_line_error(result, text)
    assert not (results / "runs").exists() and not (results / "stages").exists()


def test_the_pristine_dataset_passes_with_windows_of_every_class(tiny_data):
    counts = Emg2PoseData(tiny_data, VOCAB, SPEC).check_files()
    assert list(counts) == ["pretrain", "id_train", "id_test", "unseen_train", "unseen_test"]
    for name, c in counts.items():
        assert c["windows"] > 0
        if name != "pretrain":
            kind = name.split("_")[0]
            assert list(c["classes"]) == list(VOCAB.classes(kind)) and min(c["classes"].values()) > 0
            assert sum(c["classes"].values()) == c["windows"]


def test_the_simulator_never_writes_what_the_scan_refuses(tmp_path):
    cfg = SynthConfig(seed=5, users=3, test_users=1, val_users=1, stage_seconds=2.0, difficulty=1.0,
                      sides=("left", "right"), stages="v1", sessions=1)
    root = simulator.generate(cfg, tmp_path / "other")
    Emg2PoseData(root, VOCAB, SPEC)  # metadata: no split leak
    for path in sorted(root.glob("*.hdf5")):
        verdict = scan_recording(str(path), SPEC.window, SPEC.stride)
        assert not isinstance(verdict, str), verdict


def test_the_scan_reads_in_chunks_and_finds_problems_across_their_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(recordings_module, "SCAN_ROWS", 16)
    rows = np.zeros(100, dtype=schema.TIMESERIES_DTYPE)
    rows["time"] = np.arange(100) / 2000.0
    rows["joint_angles"] = 0.5
    rows["joint_angles"][45:50] = 0.0  # an IK failure across a chunk boundary
    attrs = {name: 0 for name in schema.GROUP_ATTRS} | {"sample_rate": schema.SAMPLE_RATE}
    path = tmp_path / "x.hdf5"
    simulator.write_recording(path, rows, attrs)
    assert np.array_equal(scan_recording(str(path), 10, 5).starts, valid_window_starts(rows["joint_angles"], 10, 5))
    spoiled = rows.copy()
    spoiled["time"][31] = spoiled["time"][30]  # a repeated timestamp passes
    spoiled["time"][32] = spoiled["time"][30] - 1.0  # the first row of the third chunk goes back
    spoiled["emg"][[10, 40], [0, 15]] = np.nan
    simulator.write_recording(path, spoiled, attrs)
    assert scan_recording(str(path), 10, 5) == f"{path}: time goes backwards in row 32 (1 value)"
    spoiled["time"] = rows["time"]
    simulator.write_recording(path, spoiled, attrs)
    assert scan_recording(str(path), 10, 5) == f"{path}: emg is not finite in rows 10-40 (2 values)"


def test_the_scan_is_cached_and_a_changed_file_is_scanned_again(tmp_path, tiny_data, monkeypatch):
    root = linked_copy(tiny_data, tmp_path / "data")
    cache = tmp_path / "cache"
    opened = []
    real_open = h5py.File
    monkeypatch.setattr(h5py, "File", lambda path, *a, **k: opened.append(Path(path).name) or real_open(path, *a, **k))

    first = Emg2PoseData(root, VOCAB, SPEC, cache).check_files()
    assert len(opened) == len(set(opened)) > 0  # one pass: each recording opened once
    opened.clear()
    assert Emg2PoseData(root, VOCAB, SPEC, cache).check_files() == first
    assert opened == []

    victim = recordings(root, "Claw", test_user=True)[0]
    rewrite(victim, set_values("emg", (7, 0), np.nan))
    for reads in ([victim.name], []):  # scanned again once; then the refusal is the cached verdict
        opened.clear()
        with pytest.raises(DataError, match=r"emg is not finite in row 7 \(1 value\)"):
            Emg2PoseData(root, VOCAB, SPEC, cache).check_files()
        assert opened == reads


def test_an_index_read_back_holds_each_recordings_starts_once(tmp_path):
    """The window starts of every recording, read from index.npz, take the memory of one array: the index of the
    real dataset's thousands of recordings is read by every stage."""
    import tracemalloc
    path = tmp_path / "index.npz"
    index = recordings_module.WindowIndex(path)
    for i in range(200):
        index.put(f"r{i}.hdf5|1|{i}", recordings_module.Scan(np.arange(1000, dtype=np.int64) * (i + 1), 10**6, i))
    index.put("broken.hdf5|1|0", "broken.hdf5: emg is not finite")
    index.save()
    tracemalloc.start()
    try:
        read = recordings_module.WindowIndex(path)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 3 * 200 * 1000 * 8, f"{held:,} bytes held for 1.6 MB of window starts"
    assert read.get("broken.hdf5|1|0") == "broken.hdf5: emg is not finite"
    seventh = read.get("r7.hdf5|1|7")
    assert np.array_equal(seventh.starts, np.arange(1000) * 8) and seventh.ik_rows == 7
