"""emg2pose's moving_hand: a recording of the hand not prompted to move carries no gesture label (the probes leave
it out) while pre-training still reads it; the simulator writes the column as emg2pose means it."""

from __future__ import annotations

import dataclasses
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from test_cli import assert_one_line_error, cli
from test_integrity import linked_copy

from bench import plugins
from cpep.data import schema
from cpep.data.emg2pose import Emg2PoseData
from cpep.data.gestures import load_vocab
from cpep.data.windows import WindowSpec
from cpep.errors import ConfigError, DataError
from cpep.synth import simulator
from cpep.synth.config import SynthConfig

SPEC = WindowSpec(window=2000, stride=1000, pose_decimation=10)
VOCAB = load_vocab("synthetic-v1")
# Half the stages one-handed; a seed whose one test user keeps, after IK failures, a window of every class in the
# recordings of the hands that moved.
ONE_HANDED = SynthConfig(seed=1, users=3, test_users=1, stage_seconds=3.0, sides=("left", "right"), one_handed=0.5,
                         stages="v1", sessions=1)


@pytest.fixture(scope="module")
def one_handed_data(tmp_path_factory):
    return simulator.generate(ONE_HANDED, tmp_path_factory.mktemp("one-handed") / "data")


def angles(root, filename):
    with h5py.File(root / f"{filename}.hdf5", "r") as f:
        a = f[schema.GROUP][schema.TIMESERIES]["joint_angles"]
    return a[~np.all(a == 0.0, axis=1)]  # IK failures left out


def test_by_default_every_stage_is_performed_with_both_hands(tiny_data):
    assert set(pd.read_csv(tiny_data / "metadata.csv")["moving_hand"]) == {"both"}


def test_one_handed_stages_have_one_moving_hand_and_the_other_at_rest(one_handed_data):
    meta = pd.read_csv(one_handed_data / "metadata.csv")
    assert set(meta["moving_hand"]) == {"both", "left", "right"}
    # moving_hand belongs to a user's stage: both hands' recordings of it say the same.
    assert (meta.groupby(["user", "stage"])["moving_hand"].nunique() == 1).all()
    one_handed = meta[meta["moving_hand"] != "both"]
    for (_, stage), rows in one_handed.groupby(["user", "stage"]):
        moving = rows[rows["side"] == rows["moving_hand"]]["filename"].iloc[0]
        still = rows[rows["side"] != rows["moving_hand"]]["filename"].iloc[0]
        # The resting hand's joints only tremble; the moving hand makes the gesture.
        assert angles(one_handed_data, still).std(0).max() < 0.05
        assert angles(one_handed_data, moving).std(0).max() > 0.1, stage


def test_two_handed_recordings_do_not_depend_on_the_chance_of_one_handed_stages(one_handed_data, tmp_path):
    two_handed = simulator.generate(dataclasses.replace(ONE_HANDED, one_handed=0.0), tmp_path / "both")
    meta = pd.read_csv(one_handed_data / "metadata.csv")
    same = meta[meta["moving_hand"] == "both"]["filename"]
    assert len(same) > 10
    for name in same:
        assert (one_handed_data / f"{name}.hdf5").read_bytes() == (two_handed / f"{name}.hdf5").read_bytes()


def test_the_probes_leave_out_the_hand_not_prompted_to_move_and_pre_training_keeps_it(one_handed_data):
    data = Emg2PoseData(one_handed_data, VOCAB, SPEC)
    meta = data.meta
    still = meta[(meta["moving_hand"] != "both") & (meta["moving_hand"] != meta["side"])]
    assert len(still) > 0 and set(data.still_hand_recordings()["filename"]) == set(still["filename"])
    pretrain = set(data.pretrain_recordings()["filename"])
    assert set(still[still["split"] == "train"]["filename"]) <= pretrain
    for kind in ("id", "unseen"):
        for rows in data.probe_recordings(kind):
            assert not set(rows["filename"]) & set(still["filename"])
            assert ((rows["moving_hand"] == "both") | (rows["moving_hand"] == rows["side"])).all()
    counts = data.check_files()
    labelled = meta["stage"].isin(list(VOCAB.stage_labels("id"))) & ~meta["held_out_user"]
    assert counts["id_train"]["recordings"] == int((labelled & meta["hand_moves"]).sum()) < int(labelled.sum())


def test_a_recording_marked_as_the_other_hand_loses_its_label_only(tmp_path, tiny_data):
    root = linked_copy(tiny_data, tmp_path / "data")
    meta = pd.read_csv(root / "metadata.csv")
    row = meta.index[(meta["stage"] == "Fist") & ~meta["held_out_user"]][0]
    name, side = meta.loc[row, "filename"], meta.loc[row, "side"]
    before = Emg2PoseData(root, VOCAB, SPEC)
    id_train, pretrain = len(before.selection("id_train")), len(before.selection("pretrain"))
    meta.loc[row, "moving_hand"] = side  # the hand prompted to move: still labelled
    meta.to_csv(root / "metadata.csv", index=False)
    assert len(Emg2PoseData(root, VOCAB, SPEC).selection("id_train")) == id_train
    meta.loc[row, "moving_hand"] = {"left": "right", "right": "left"}[side]
    meta.to_csv(root / "metadata.csv", index=False)
    after = Emg2PoseData(root, VOCAB, SPEC)
    windows = len(before.windows(meta.loc[[row]].assign(path=str(root / f"{name}.hdf5"))))
    assert windows > 0 and len(after.selection("id_train")) == id_train - windows
    assert len(after.selection("pretrain")) == pretrain
    check = cli("data", "check", root, "--runs-dir", tmp_path / "results")
    assert "1 recordings of a hand not prompted to move" in check.stdout
    assert "pre-training reads 1 of them" in check.stdout


@pytest.mark.parametrize("column, value, text", [
    ("moving_hand", "neither", "moving_hand must be both, left or right, not 'neither' (line 2)"),
    ("moving_hand", "", "moving_hand must be both, left or right, not nan (line 2)"),
    ("side", "middle", "side must be left or right, not 'middle' (line 2)"),
])
def test_a_hand_other_than_both_left_or_right_is_refused_in_one_line(tmp_path, tiny_data, column, value, text):
    root = linked_copy(tiny_data, tmp_path / "data")
    meta = pd.read_csv(root / "metadata.csv")
    meta[column] = meta[column].astype(object)
    meta.loc[0, column] = value
    meta.to_csv(root / "metadata.csv", index=False)
    with pytest.raises(DataError, match=re.escape(text)):
        Emg2PoseData(root, VOCAB, SPEC)
    assert_one_line_error(cli("data", "check", root, "--runs-dir", tmp_path / "results", check=False), text)


def test_the_chance_of_one_handed_stages_is_part_of_the_dataset_identity():
    dataset = plugins.get("dataset", "synthetic")
    default = plugins.resolve({})
    assert default["data"]["synth"]["one_handed"] == 0.0
    other = plugins.resolve({"data.synth.one_handed": 0.25})
    assert dataset.identity(other) != dataset.identity(default)
    assert SynthConfig(**other["data"]["synth"]).key() != SynthConfig(**default["data"]["synth"]).key()
    with pytest.raises(ConfigError, match=r"data.synth.one_handed must be >= 0, <= 1, not 1.5"):
        plugins.resolve({"data.synth.one_handed": 1.5})
