"""The emg2pose reader: validation, IK-failure-free windows, protocol selections, tokens on one time grid."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from cpep.config import Data
from cpep.data import schema
from cpep.data.emg2pose import Emg2PoseData, open_data
from cpep.data.gestures import load_vocab
from cpep.data.recordings import valid_window_starts, validate_recording
from cpep.data.windows import WindowSpec, random_channel_roll
from cpep.errors import DataError
from cpep.pretraining import encoder

SPEC = WindowSpec(window=2000, stride=1000, pose_decimation=10)


def test_windows_never_touch_an_ik_failure():
    angles = np.ones((10_000, 20))
    angles[4500:4510] = 0.0
    starts = valid_window_starts(angles, window=2000, stride=500)
    assert list(starts) == [0, 500, 1000, 1500, 2000, 2500, 5000, 5500, 6000, 6500, 7000, 7500, 8000]
    for s in starts:
        assert not np.all(angles[s:s + 2000] == 0.0, axis=1).any()


def test_a_window_of_a_real_recording_is_ik_clean_and_normalised(tiny_data):
    data = Emg2PoseData(tiny_data, load_vocab("synthetic-v1"), SPEC)
    windows = data.windows(data.pretrain_recordings())
    assert len(windows) > 50
    for i in range(0, len(windows), 7):
        path, start = windows.paths[windows.recording[i]], windows.starts[i]
        with h5py.File(path, "r") as f:
            angles = f["emg2pose/timeseries"][start:start + SPEC.window]["joint_angles"]
        assert not np.all(np.isclose(angles, 0.0), axis=1).any()
    batch = windows.packed().gather(np.arange(len(windows)))
    emg, pose, labels = batch["emg"].float(), batch["pose"], batch["label"]
    assert emg.shape[1:] == (16, 2000) and pose.shape[1:] == (20, 200)
    assert 0.5 < emg.std() < 2.0 and abs(float(pose.mean())) < 0.5
    assert (labels == -1).all()  # pre-training windows carry no class


def test_pretraining_never_sees_unseen_classes_or_held_out_users(tiny_data):
    data = Emg2PoseData(tiny_data, load_vocab("synthetic-v1"), SPEC)
    pre = data.pretrain_recordings()
    unseen = {s for stages in data.vocab.unseen.values() for s in stages}
    assert not set(pre["stage"]) & unseen
    assert not pre["held_out_user"].any()


def test_probes_train_on_training_users_and_test_on_held_out_users(tiny_data):
    data = Emg2PoseData(tiny_data, load_vocab("synthetic-v1"), SPEC)
    for kind in ("id", "unseen"):
        train, test = data.probe_recordings(kind)
        assert not train["held_out_user"].any() and test["held_out_user"].all()
        assert set(train["user"]).isdisjoint(test["user"])
        classes = data.vocab.classes(kind)
        assert set(train["stage"]) == set(test["stage"]) == {s for v in classes.values() for s in v}
        labels = data.windows(test, kind).labels
        assert set(labels.tolist()) == set(range(len(classes)))


def test_emg_and_pose_tokens_share_one_time_grid(tiny_config):
    emg, pose = encoder("emg", tiny_config, Emg2PoseData), encoder("pose", tiny_config, Emg2PoseData)
    assert emg.num_patches == pose.num_patches == 10


def _write(path, dtype, rows=100):
    with h5py.File(path, "w") as f:
        group = f.create_group("emg2pose")
        group.create_dataset("timeseries", data=np.zeros(rows, dtype=dtype))
        group.attrs.update({name: 0 for name in schema.GROUP_ATTRS} | {"sample_rate": schema.SAMPLE_RATE})


def test_validation_names_the_problem_in_one_line(tmp_path):
    wrong_channels = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,)), ("emg", "<f4", (8,))])
    _write(tmp_path / "channels.hdf5", wrong_channels)
    no_emg = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,))])
    _write(tmp_path / "fields.hdf5", no_emg)
    (tmp_path / "text.hdf5").write_text("not hdf5")
    _write(tmp_path / "ok.hdf5", schema.TIMESERIES_DTYPE)
    validate_recording(tmp_path / "ok.hdf5")
    for name, message in (("channels", "emg has 8 channels, expected 16"), ("fields", "no field 'emg'"),
                          ("text", "not a readable HDF5 file")):
        with pytest.raises(DataError, match=message) as e:
            validate_recording(tmp_path / f"{name}.hdf5")
        assert "\n" not in str(e.value)


def test_dataset_level_errors(tmp_path, tiny_data, tiny_config):
    with pytest.raises(DataError, match="no metadata.csv"):
        open_data(Data.of(tiny_config), tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        open_data(Data.of(tiny_config), tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_data, broken)
    (broken / "metadata.csv").write_text("filename,user\nx,y\n")
    with pytest.raises(DataError, match="missing emg2pose columns"):
        open_data(Data.of(tiny_config), broken)
    with pytest.raises(DataError, match="names stage 'HandClawGraspFlicks'"):
        Emg2PoseData(tiny_data, load_vocab("emg2pose-v1"), SPEC)
    with pytest.raises(DataError, match="unknown gesture vocabulary"):
        load_vocab("nope-v9")


def test_a_recording_with_the_wrong_channel_count_is_refused_before_work(tmp_path, tiny_data, tiny_config):
    root = tmp_path / "copy"
    shutil.copytree(tiny_data, root)
    data = open_data(Data.of(tiny_config), root)
    victim = data.probe_recordings("unseen")[1]["path"].iloc[-1]  # read only by the last evaluation
    wrong = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,)), ("emg", "<f4", (8,))])
    _write(victim, wrong, rows=5000)
    with pytest.raises(DataError, match="emg has 8 channels"):
        open_data(Data.of(tiny_config), root).check_files()


def test_channel_roll_rotates_the_ring():
    import torch
    x = torch.randn(64, 16, 5)
    torch.manual_seed(0)
    y = random_channel_roll(x, 1)
    seen = set()
    for i in range(64):  # each window is its ring rotated by -1, 0 or 1 electrodes, never shuffled
        shifts = [s for s in (-1, 0, 1) if torch.equal(y[i], torch.roll(x[i], s, dims=0))]
        assert len(shifts) == 1
        seen.add(shifts[0])
    assert seen == {-1, 0, 1}


def test_window_index_is_cached_and_follows_file_changes(tmp_path, tiny_data):
    root = tmp_path / "copy"
    shutil.copytree(tiny_data, root)
    cache = tmp_path / "cache"
    first = Emg2PoseData(root, load_vocab("synthetic-v1"), SPEC, cache)
    rows = first.pretrain_recordings()
    before = first.windows(rows)
    assert len(list(cache.glob("windows-*.npz"))) == 1 and len(list(cache.glob("stats-*.json"))) == 1
    again = Emg2PoseData(root, load_vocab("synthetic-v1"), SPEC, cache).windows(rows)
    assert np.array_equal(before.starts, again.starts) and np.array_equal(before.recording, again.recording)
    assert again.spec == before.spec and first.stats == Emg2PoseData(root, load_vocab("synthetic-v1"), SPEC, cache).stats
    victim = rows["path"].iloc[0]
    with h5py.File(victim, "r+") as f:  # every row an IK failure: the file must now give no window
        ts = f["emg2pose/timeseries"]
        data = ts[:]
        data["joint_angles"] = 0.0
        ts[:] = data
    after = Emg2PoseData(root, load_vocab("synthetic-v1"), SPEC, cache).windows(rows)
    assert (after.recording == 0).sum() == 0 and (before.recording == 0).sum() > 0
    assert len(after) == len(before) - (before.recording == 0).sum()
