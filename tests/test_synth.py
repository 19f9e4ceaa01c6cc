"""The simulator writes the emg2pose format, physiologically shaped, deterministically."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd

from cpep import schema, synth
from cpep.recordings import validate_recording


def _read(path):
    with h5py.File(path, "r") as f:
        group = f[schema.GROUP]
        return group[schema.TIMESERIES][:], dict(group.attrs)


def test_files_follow_the_emg2pose_schema(tiny_data):
    meta = pd.read_csv(tiny_data / "metadata.csv")
    assert list(meta.columns) == list(schema.METADATA_COLUMNS)
    assert len(synth.GESTURES) >= 12 and set(meta["stage"]) == set(synth.GESTURES)
    rows, attrs = _read(tiny_data / f"{meta['filename'][0]}.hdf5")
    assert rows.dtype == schema.TIMESERIES_DTYPE
    assert set(schema.GROUP_ATTRS) <= set(attrs)
    assert attrs["num_channels"] == 16 and attrs["sample_rate"] == 2000.0
    assert np.all(np.diff(rows["time"]) > 0)
    assert np.allclose(np.diff(rows["time"]), 1 / 2000.0, rtol=1e-3)  # unix seconds in float64
    for path in tiny_data.glob("*.hdf5"):
        validate_recording(path)


def test_metadata_holds_out_users_and_stages(tiny_data):
    meta = pd.read_csv(tiny_data / "metadata.csv")
    held_users = set(meta.loc[meta["held_out_user"], "user"])
    assert len(held_users) == 1 and held_users.isdisjoint(meta.loc[~meta["held_out_user"], "user"])
    assert set(meta.loc[meta["held_out_stage"], "stage"]) == set(synth.HELD_OUT_STAGES)
    train = meta[meta["split"] == "train"]
    assert not train["held_out_user"].any() and not train["held_out_stage"].any()
    assert set(meta["generalization"]) == {"none", "stage", "user", "user_stage"}


def test_angles_stay_within_joint_limits_and_ik_failures_are_zero_rows(tiny_data):
    failures = 0
    for path in tiny_data.glob("*.hdf5"):
        angles = _read(path)[0]["joint_angles"]
        zero = np.all(angles == 0.0, axis=1)
        failures += zero.sum()
        valid = angles[~zero]
        assert np.all(valid >= schema.JOINT_LIMITS[:, 0] - 1e-9)
        assert np.all(valid <= schema.JOINT_LIMITS[:, 1] + 1e-9)
    assert failures > 0


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    cfg = synth.SynthConfig(users=2, test_users=1, stage_seconds=2.0)
    a = synth.generate(cfg, tmp_path / "a")
    b = synth.generate(cfg, tmp_path / "b")
    c = synth.generate(synth.SynthConfig(seed=1, users=2, test_users=1, stage_seconds=2.0), tmp_path / "c")
    name = pd.read_csv(a / "metadata.csv")["filename"][3] + ".hdf5"
    assert np.array_equal(_read(a / name)[0], _read(b / name)[0])
    assert not np.array_equal(_read(a / name)[0]["emg"], _read(c / name)[0]["emg"])


def test_emg_leads_the_movement_it_causes():
    """A finger flexion at t = 1 s: forearm EMG power rises before the pose changes."""
    rng = np.random.default_rng(0)
    user = synth.draw_user(rng, difficulty=0.0)
    t = np.arange(4000) / 2000.0
    rest = synth.shape_to_angles(*synth.REST)
    fist = synth.shape_to_angles(*synth.STATIC_SHAPES["Fist"])
    ramp = np.clip((t - 1.0) / 0.05, 0, 1)[:, None]
    emg = synth.pose_to_emg(rest + ramp * (fist - rest), user, rng)
    power = (emg.astype(float) ** 2).sum(axis=1)
    before = power[int(0.3 * 2000):int(0.8 * 2000)].mean()
    lead = power[int(0.95 * 2000):int(1.0 * 2000)].mean()  # the 50 ms before the movement starts
    after = power[int(1.5 * 2000):int(2.0 * 2000)].mean()
    assert lead > 1.5 * before
    assert after > 2 * before  # a held fist keeps its flexors active


def test_users_differ_and_gestures_differ_in_spatial_pattern():
    """Per-user ring rotation/gains change the pattern; a different gesture changes it more for one user."""
    q = {name: np.repeat(synth.shape_to_angles(*synth.STATIC_SHAPES[name])[None], 4000, 0)
         for name in ("Fist", "Point")}

    def pattern(user, gesture):
        emg = synth.pose_to_emg(q[gesture], user, np.random.default_rng(1)).astype(float)
        rms = np.sqrt((emg[1000:] ** 2).mean(axis=0))
        return rms / np.linalg.norm(rms)

    u1, u2 = (synth.draw_user(np.random.default_rng(s), difficulty=0.5) for s in (1, 2))
    assert np.linalg.norm(pattern(u1, "Fist") - pattern(u2, "Fist")) > 0.05
    assert np.linalg.norm(pattern(u1, "Fist") - pattern(u1, "Point")) > 0.05


def test_invalid_synth_settings_are_refused(tmp_path):
    import pytest
    with pytest.raises(ValueError, match="training user"):
        synth.generate(synth.SynthConfig(users=2, test_users=2), tmp_path / "x")
    assert not (tmp_path / "x").exists()
