"""emg2pose as it ships: the full and mini releases' layouts, the embridge data protocol, and `data check`'s counts
on a small dataset whose numbers are known."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from test_cli import assert_one_line_error, cli

from bench import plugins, suites
from bench.check.survey import survey
from bench.run import planner
from cpep.config import Data
from cpep.data import protocols, schema
from cpep.data.emg2pose import Emg2PoseData, open_data
from cpep.data.gestures import load_vocab
from cpep.data.windows import WindowSpec
from cpep.errors import ConfigError, DataError
from cpep.synth import simulator

RATE = schema.SAMPLE_RATE
ROWS = 4400           # rows per recording (2.2 s)
IK_FROM = 4300        # rows from here on are IK failures
KNOWN = {"data.window": 400, "data.stride": 200}  # 20 windows per recording: starts 0-3800 (4000 reaches row 4399)

VOCAB_TOML = """name = "layouts"
version = 1
[in_distribution]
A = ["A"]
B = ["B"]
[unseen]
C = ["C"]
D = ["D"]
"""


def recording(rows: int = ROWS, seed: int = 0, ik_from: int | None = IK_FROM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(rows, dtype=schema.TIMESERIES_DTYPE)
    out["time"] = 1.67e9 + np.arange(rows) / RATE
    out["joint_angles"] = rng.uniform(0.1, 0.5, (rows, schema.NUM_JOINTS))
    if ik_from is not None:
        out["joint_angles"][ik_from:] = 0.0
    out["emg"] = rng.normal(0, 1, (rows, schema.NUM_CHANNELS)).astype(np.float32)
    return out


def write_dataset(root, absent=(), subfolder_users=("u3",)):
    """4 users: u0 and u1 training users (u0 in two sessions, the second only stage A), u2 a held-out test user,
    u3 a held-out validation user (its files in a subfolder). Stages A, B are training stages, C, D held out.
    17 rows in metadata.csv; the files of `absent` (user, stage) are not written."""
    root.mkdir(parents=True)
    plan = [("u0", "s0a", st) for st in "ABCD"] + [("u0", "s0b", "A")]
    plan += [(u, f"s{u[1]}", st) for u in ("u1", "u2", "u3") for st in "ABCD"]
    rows = []
    for i, (user, session, stage) in enumerate(plan):
        held_user, held_stage = user in ("u2", "u3"), stage in "CD"
        split = "val" if user == "u3" else "test" if held_user or held_stage else "train"
        name = f"{session}-{stage}_right"
        rows.append({"filename": name, "user": user, "session": session, "stage": stage, "side": "right",
                     "moving_hand": "both", "held_out_user": held_user, "held_out_stage": held_stage,
                     "split": split, "generalization": "user" if held_user else "stage" if held_stage else "none"})
        if (user, stage) in absent:
            continue
        folder = root / "sub" if user in subfolder_users else root
        folder.mkdir(exist_ok=True)
        attrs = {"filename": name, "session": session, "stage": f"{stage}_both", "user": user, "side": "right",
                 "start": 0.0, "end": ROWS / RATE, "num_channels": 16, "sample_rate": RATE}
        simulator.write_recording(folder / f"{name}.hdf5", recording(seed=i), attrs)
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    (root.parent / "layouts.toml").write_text(VOCAB_TOML)
    return root


def config(root, **overrides):
    return plugins.resolve({"data.name": "emg2pose", "data.root": str(root),
                            "data.vocab": str(root.parent / "layouts.toml"), **KNOWN, **overrides})


# ------------------------------------------------------------------ the embridge protocol

def test_the_embridge_filter_removes_60_hz_and_dc_and_keeps_100_hz():
    t = np.arange(int(10 * RATE)) / RATE
    p = protocols.get("embridge")
    middle = slice(int(2 * RATE), int(8 * RATE))  # away from the ends, where any filter has edge effects

    def amplitude(x, hz):
        return 2 * abs(np.mean(x[middle] * np.exp(-2j * np.pi * hz * t[middle])))

    hum = (3.0 + np.sin(2 * np.pi * 60 * t)).astype(np.float32)[:, None]  # a DC offset and mains hum
    out = protocols.filter_emg(hum, p, RATE)[:, 0]
    assert out.dtype == np.float32
    assert np.abs(out[middle]).max() < 0.02 and abs(out[middle].mean()) < 1e-3
    tone = np.sin(2 * np.pi * 100 * t).astype(np.float32)[:, None]
    kept = protocols.filter_emg(tone, p, RATE)[:, 0]
    assert amplitude(kept, 100) == pytest.approx(1.0, abs=0.01)
    # zero phase: the kept tone is not shifted
    assert np.abs(kept[middle] - tone[middle, 0]).max() < 0.02
    assert protocols.filter_emg(hum, protocols.get("default"), RATE) is hum


def test_the_preset_sets_window_and_stride_and_an_explicit_setting_wins():
    cfg = plugins.resolve({"data.protocol": "embridge"})
    assert (cfg["data"]["window"], cfg["data"]["stride"]) == (4000, 4000)
    default = plugins.resolve({})
    assert (default["data"]["window"], default["data"]["stride"]) == (2000, 1000)
    assert plugins.resolve({"data.protocol": "embridge", "data.stride": 2000})["data"]["window"] == 4000
    assert plugins.resolve({"data.protocol": "embridge", "data.stride": 2000})["data"]["stride"] == 2000
    with pytest.raises(ConfigError, match="unknown data.protocol 'other'"):
        plugins.resolve({"data.protocol": "other"})


def test_the_protocol_is_part_of_the_stage_keys():
    smoke = suites.load("smoke")
    default = {s.key for r in planner.plan(smoke) for s in r.stages}
    embridge = {s.key for r in planner.plan(smoke, overrides={"data.protocol": "embridge"}) for s in r.stages}
    assert default and not default & embridge
    # the default protocol adds nothing to a dataset's identity: keys of stages computed before protocols existed
    # stay valid (--reuse-stale)
    cfg = plugins.resolve({})
    assert "protocol" not in plugins.get("dataset", "synthetic").identity(cfg)
    assert "protocol" in plugins.get("dataset", "synthetic").identity(plugins.resolve({"data.protocol": "embridge"}))


def test_embridge_windows_are_2_s_without_overlap_filtered_whole_and_standardised_each(tmp_path):
    root = write_dataset(tmp_path / "data")
    path = tmp_path / "long.hdf5"
    rows = recording(rows=12_500, ik_from=None)
    rows["emg"] += np.float32(5.0)  # an offset the filter removes
    simulator.write_recording(path, rows, {name: 0 for name in schema.GROUP_ATTRS} | {"sample_rate": RATE})
    cfg = config(root, **{"data.protocol": "embridge", "data.window": 4000, "data.stride": 4000})
    data = open_data(Data.of(cfg), root, tmp_path / "cache")
    assert data.spec.window == 4000 and data.spec.stride == 4000
    windows = data.windows(pd.DataFrame({"path": [str(path)], "stage": ["A"]}))
    assert windows.starts.tolist() == [0, 4000, 8000]
    filtered = protocols.filter_emg(rows["emg"], protocols.get("embridge"), RATE)  # the whole recording at once
    packed = windows.packed().gather(np.arange(3))
    for i, start in enumerate(windows.starts):
        emg = windows[i]["emg"].numpy()
        assert emg.shape == (16, 4000)
        np.testing.assert_allclose(emg.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(emg.std(axis=1), 1.0, atol=1e-3)
        expected = protocols.per_window(filtered[start:start + 4000].T[None])[0]
        np.testing.assert_allclose(emg, expected, atol=1e-4)
        np.testing.assert_allclose(packed["emg"][i].float().numpy(), emg, atol=1e-2)  # the cache holds float16


# ------------------------------------------------------------------ layouts

def test_files_in_subfolders_are_found_by_their_filename(tmp_path):
    root = write_dataset(tmp_path / "data", subfolder_users=("u0", "u3"))
    data = Emg2PoseData(root, load_vocab(str(tmp_path / "layouts.toml")), WindowSpec(400, 200, 10))
    assert (data.meta["path"] != "").all()
    assert {p.split("/")[-2] for p in data.meta.loc[data.meta["user"] == "u0", "path"]} == {"sub"}
    assert len(data.selection("pretrain")) == 5 * 20


def test_a_file_in_two_places_is_refused_in_one_line(tmp_path):
    root = write_dataset(tmp_path / "data")
    (root / "other").mkdir()
    shutil.copy(root / "sub" / "s3-A_right.hdf5", root / "other" / "s3-A_right.hdf5")
    with pytest.raises(DataError, match="s3-A_right.hdf5 is in 2 places"):
        Emg2PoseData(root, load_vocab(str(tmp_path / "layouts.toml")), WindowSpec(400, 200, 10))


def test_linked_folders_and_files_are_followed_and_a_file_reached_twice_is_one(tmp_path):
    root = write_dataset(tmp_path / "data", subfolder_users=("u0", "u3"))
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(root / "sub", outside / "sub")
    (root / "sub").symlink_to(outside / "sub")                   # u0's and u3's files, through a linked folder
    shutil.move(root / "s1-A_right.hdf5", outside / "s1-A_right.hdf5")
    (root / "links").mkdir()
    (root / "links" / "s1-A_right.hdf5").symlink_to(outside / "s1-A_right.hdf5")  # a linked file in a subfolder
    (root / "links" / "s2-A_right.hdf5").symlink_to(root / "s2-A_right.hdf5")  # a second path to a file
    (outside / "sub" / "up").symlink_to(root)                    # a loop: walked once
    data = Emg2PoseData(root, load_vocab(str(tmp_path / "layouts.toml")), WindowSpec(400, 200, 10))
    paths = dict(zip(data.meta["filename"], data.meta["path"]))
    assert (data.meta["path"] != "").all()
    assert paths["s1-A_right"] == str(root / "links" / "s1-A_right.hdf5")
    assert paths["s0b-A_right"] == str(root / "sub" / "s0b-A_right.hdf5")
    assert paths["s2-A_right"] == str(root / "s2-A_right.hdf5")
    assert len(data.selection("pretrain")) == 5 * 20
    s = survey(config(root), root, tmp_path / "cache")
    assert s.files == {"listed": 17, "present": 17, "absent": 0, "unlisted": 0} and s.problems == []
    (root / "metadata.csv").unlink()
    described = survey(config(root), root, None)
    assert described.files["present"] == 17 and described.users["total"] == 4


def test_absent_files_are_refused_or_with_allow_missing_left_out_and_counted(tmp_path):
    root = write_dataset(tmp_path / "data", absent={("u1", "A")})
    vocab = load_vocab(str(tmp_path / "layouts.toml"))
    with pytest.raises(DataError, match="s1-A_right.hdf5: listed in metadata.csv but missing"):
        Emg2PoseData(root, vocab, WindowSpec(400, 200, 10)).selection("pretrain")
    data = Emg2PoseData(root, vocab, WindowSpec(400, 200, 10), allow_missing=True)
    assert data.absent["filename"].tolist() == ["s1-A_right"]
    assert len(data.selection("pretrain")) == 4 * 20
    s = survey(config(root, **{"data.allow_missing": True}), root, tmp_path / "cache")
    assert s.files == {"listed": 17, "present": 16, "absent": 1, "unlisted": 0}
    assert s.problems == [] and "1 of the 17 recordings metadata.csv lists are absent: left out" in s.notes[0]
    strict = survey(config(root), root, tmp_path / "cache")
    assert strict.problems == ["1 of the 17 recordings metadata.csv lists are absent (first: s1-A_right.hdf5); "
                               "--set data.allow_missing=true leaves them out"]
    plugin = plugins.get("dataset", "emg2pose")
    # The identity names the files present (name, size, modification time): the same files, the same data.
    assert plugin.identity(config(root, **{"data.allow_missing": True})) == plugin.identity(config(root))


def mini_release(root):
    """As the mini release ships: the files of one session of one training user, and the full metadata.csv."""
    full = write_dataset(root.parent / "full")
    root.mkdir()
    shutil.copy(full / "metadata.csv", root / "metadata.csv")
    for path in full.glob("s0a-*.hdf5"):
        shutil.copy(path, root / path.name)
    return root


def test_the_mini_release_is_described_and_said_to_be_unable_to_run_the_protocol(tmp_path):
    root = mini_release(tmp_path / "mini")
    s = survey(config(root, **{"data.allow_missing": True}), root, tmp_path / "cache")
    assert s.files == {"listed": 17, "present": 4, "absent": 13, "unlisted": 0}
    assert (s.users["total"], s.sessions, s.stages["total"]) == (1, 1, 4)
    assert s.hours == pytest.approx(4 * ROWS / RATE / 3600)
    assert s.problems == ["cannot run the CPEP protocol: the recordings are of 1 user and 1 session, 0 of them a "
                          "held-out test user; it pre-trains on training users and tests on held-out ones (the "
                          "full release has them)"]
    result = cli("data", "check", root, "--set", f"data.vocab={tmp_path / 'layouts.toml'}",
                 "--set", "data.allow_missing=true", "--set", "data.window=400", "--set", "data.stride=200",
                 "--runs-dir", tmp_path / "r", check=False)
    assert_one_line_error(result, "cannot run the CPEP protocol: the recordings are of 1 user and 1 session")
    assert "files: 4 present of 17 listed in metadata.csv (13 absent)" in result.stdout


def test_a_directory_without_metadata_is_described_from_the_files_attributes(tmp_path):
    root = mini_release(tmp_path / "mini")
    (root / "metadata.csv").unlink()
    s = survey(config(root), root, None)
    assert s.files["present"] == 4 and (s.users["total"], s.sessions, s.stages["total"]) == (1, 1, 4)
    assert s.ik_fraction == pytest.approx((ROWS - IK_FROM) / ROWS)
    assert len(s.problems) == 1 and "cannot run the CPEP protocol: it has no metadata.csv" in s.problems[0]


# ------------------------------------------------------------------ data check's counts

def test_data_check_counts_what_the_dataset_holds(tmp_path):
    root = write_dataset(tmp_path / "data")
    s = survey(config(root), root, tmp_path / "cache")
    assert s.problems == []
    assert s.files == {"listed": 17, "present": 17, "absent": 0, "unlisted": 0}
    assert s.users == {"total": 4, "training": 2, "held-out": 2, "validation": 1, "test": 1}
    assert s.stages == {"total": 4, "training": 2, "held-out": 2} and s.sessions == 5
    assert s.hours == pytest.approx(17 * ROWS / RATE / 3600)
    assert s.ik_fraction == pytest.approx((ROWS - IK_FROM) / ROWS)
    assert {name: c["windows"] for name, c in s.selections.items()} == {
        "pretrain": 5 * 20, "id_train": 5 * 20, "id_test": 2 * 20, "unseen_train": 4 * 20, "unseen_test": 2 * 20}
    assert s.selections["id_train"]["classes"] == {"A": 3 * 20, "B": 2 * 20}
    result = cli("data", "check", root, "--set", f"data.vocab={tmp_path / 'layouts.toml'}",
                 "--set", "data.window=400", "--set", "data.stride=200", "--runs-dir", tmp_path / "r")
    for line in ("files: 17 present of 17 listed in metadata.csv (0 absent), 0 not listed",
                 "users: 4 (training 2; held out 2: validation 1, test 1)", "stages: 4 (training 2, held out 2)",
                 "sessions: 5", "IK failures: 2.3 % of their rows",
                 "windows of 400 samples every 200 (protocol default)", "ok (layouts-v1)"):
        assert line in result.stdout


def test_a_broken_recording_no_selection_reads_is_a_note_not_a_problem(tmp_path):
    root = write_dataset(tmp_path / "data")
    (root / "sub" / "s3-A_right.hdf5").write_bytes(b"not an HDF5 file")  # u3: a validation user, never read
    result = cli("data", "check", root, "--set", f"data.vocab={tmp_path / 'layouts.toml'}",
                 "--set", "data.window=400", "--set", "data.stride=200", "--runs-dir", tmp_path / "r")
    note = [line for line in result.stdout.splitlines() if "s3-A_right.hdf5" in line]
    assert len(note) == 1 and note[0].endswith("(no selection reads it: not a problem for a run)"), note
    assert "problem: " not in result.stdout and "ok (layouts-v1)" in result.stdout


def test_data_check_lists_every_problem_one_line_each(tmp_path):
    root = write_dataset(tmp_path / "data")
    (root / "s1-B_right.hdf5").write_bytes(b"not an HDF5 file")
    rows = recording()
    rows["emg"][7, 3] = np.nan
    simulator.write_recording(root / "s2-C_right.hdf5", rows, {name: 0 for name in schema.GROUP_ATTRS}
                          | {"sample_rate": RATE})
    s = survey(config(root), root, tmp_path / "cache")
    assert len(s.problems) == 3, s.problems
    assert "s1-B_right.hdf5: not a readable HDF5 file" in s.problems[0]
    assert s.problems[1].endswith("s2-C_right.hdf5: emg is not finite in row 7 (1 value)")
    # the refused recording was class C's only test recording
    assert "selection unseen_test has no window of class 'C'" in s.problems[2]
    result = cli("data", "check", root, "--set", f"data.vocab={tmp_path / 'layouts.toml'}",
                 "--set", "data.window=400", "--set", "data.stride=200", "--runs-dir", tmp_path / "r", check=False)
    assert_one_line_error(result, "not a readable HDF5 file")
    assert "(3 problems, listed above)" in result.stderr
    assert sum(line.startswith("problem: ") for line in result.stdout.splitlines()) == 3
