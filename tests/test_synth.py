"""The simulator writes the emg2pose format, physiologically shaped, deterministically."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cpep.data import schema
from cpep.data.recordings import validate_recording
from cpep.synth import simulator


def _read(path):
    with h5py.File(path, "r") as f:
        group = f[schema.GROUP]
        return group[schema.TIMESERIES][:], dict(group.attrs)


def test_files_follow_the_emg2pose_schema(tiny_data):
    meta = pd.read_csv(tiny_data / "metadata.csv")
    assert list(meta.columns) == list(schema.METADATA_COLUMNS)
    assert len(simulator.stages("v1")) >= 12 and set(meta["stage"]) == set(simulator.stages("v1"))  # TINY: stages v1
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
    assert set(meta.loc[meta["held_out_stage"], "stage"]) == set(simulator.HELD_OUT["v1"])
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
    cfg = simulator.SynthConfig(users=2, test_users=1, stage_seconds=2.0)
    a = simulator.generate(cfg, tmp_path / "a")
    b = simulator.generate(cfg, tmp_path / "b")
    c = simulator.generate(simulator.SynthConfig(seed=1, users=2, test_users=1, stage_seconds=2.0), tmp_path / "c")
    name = pd.read_csv(a / "metadata.csv")["filename"][3] + ".hdf5"
    assert np.array_equal(_read(a / name)[0], _read(b / name)[0])
    assert not np.array_equal(_read(a / name)[0]["emg"], _read(c / name)[0]["emg"])


def test_emg_leads_the_movement_it_causes():
    """A finger flexion at t = 1 s: forearm EMG power rises before the pose changes (no wrist muscles or effort
    drift, which pose does not drive)."""
    rng = np.random.default_rng(0)
    user = simulator.draw_user(rng, difficulty=0.0)
    clean = simulator.SynthConfig(wrist_sources=0.0, effort_drift=0.0)
    t = np.arange(4000) / 2000.0
    rest = simulator.shape_to_angles(*simulator.REST)
    fist = simulator.shape_to_angles(*simulator.STATIC_SHAPES["Fist"])
    ramp = np.clip((t - 1.0) / 0.05, 0, 1)[:, None]
    emg = simulator.pose_to_emg(rest + ramp * (fist - rest), user, rng, cfg=clean)
    power = (emg.astype(float) ** 2).sum(axis=1)
    before = power[int(0.3 * 2000):int(0.8 * 2000)].mean()
    lead = power[int(0.95 * 2000):int(1.0 * 2000)].mean()  # the 50 ms before the movement starts
    after = power[int(1.5 * 2000):int(2.0 * 2000)].mean()
    assert lead > 1.5 * before
    assert after > 2 * before  # a held fist keeps its flexors active


def test_users_differ_and_gestures_differ_in_spatial_pattern():
    """Per-user ring rotation/gains change the pattern; a different gesture changes it more for one user."""
    q = {name: np.repeat(simulator.shape_to_angles(*simulator.STATIC_SHAPES[name])[None], 4000, 0)
         for name in ("Fist", "Point")}

    def pattern(user, gesture):
        emg = simulator.pose_to_emg(q[gesture], user, np.random.default_rng(1)).astype(float)
        rms = np.sqrt((emg[1000:] ** 2).mean(axis=0))
        return rms / np.linalg.norm(rms)

    u1, u2 = (simulator.draw_user(np.random.default_rng(s), difficulty=0.5) for s in (1, 2))
    assert np.linalg.norm(pattern(u1, "Fist") - pattern(u2, "Fist")) > 0.05
    assert np.linalg.norm(pattern(u1, "Fist") - pattern(u1, "Point")) > 0.05


def test_invalid_synth_settings_are_refused(tmp_path):
    from cpep.errors import ConfigError
    with pytest.raises(ConfigError, match="at least one training user"):
        simulator.generate(simulator.SynthConfig(users=2, test_users=2), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ stage set v2 and what pose does not explain

SMALL_V2 = simulator.SynthConfig(users=3, test_users=1, stage_seconds=4.0, sessions=2)


@pytest.fixture(scope="module")
def v2_data(tmp_path_factory):
    return simulator.generate(SMALL_V2, tmp_path_factory.mktemp("v2") / "data")


def _held(name, n=4000):
    return np.repeat(simulator.shape_to_angles(*simulator.STATIC_SHAPES[name])[None], n, 0)


def _rms(emg, rows=slice(None)):
    return float(np.sqrt((emg[rows].astype(float) ** 2).mean()))


def test_v2_stages_share_postures_and_unseen_stages_share_more():
    from cpep.data.gestures import load_vocab
    stages, held_out = simulator.STAGE_SETS["v2"], simulator.HELD_OUT["v2"]
    vocab = load_vocab("synthetic-v2")
    assert set(vocab.stage_labels("unseen")) == set(held_out)
    assert all(2 <= len(stages[s]) <= 5 for s in stages if s != simulator.FREEFORM)

    def shared(names):  # postures of a class found in another class of the same set, per class
        return [len(set(stages[a]) & {g for b in names if b != a for g in stages[b]}) for a in names]
    id_shared, unseen_shared = shared(list(vocab.stage_labels("id"))), shared(list(held_out))
    assert sum(s > 0 for s in id_shared) >= 2 and sum(unseen_shared) > sum(id_shared)
    # Held-out stages reuse postures that pre-training sees in other stages (Peace in counting, Claw in grasps).
    training = {g for s in stages if s not in held_out for g in stages[s]}
    assert all(set(stages[s]) & training for s in held_out)


def test_v2_data_has_sessions_named_as_emg2pose_names_them(v2_data):
    meta = pd.read_csv(v2_data / "metadata.csv")
    assert set(meta["stage"]) == set(simulator.stages("v2"))
    sessions = meta.groupby("user")["session"].nunique()
    assert (sessions == SMALL_V2.sessions).all() and meta["session"].nunique() == SMALL_V2.users * SMALL_V2.sessions
    assert meta["session"].str.fullmatch(r"\d{4}-\d\d-\d\d-\d{10}-[0-9a-f]{5}-cv-emg-pose-train@2").all()
    assert (meta.groupby("user")["split"].nunique() <= 2).all()  # a user's sessions share the user's split
    assert (meta.groupby(["user", "session"]).size() == len(simulator.stages("v2"))).all()


def test_a_recording_starts_in_the_previous_stages_last_posture_and_ends_at_rest(v2_data):
    meta = pd.read_csv(v2_data / "metadata.csv")
    first = meta[(meta["user"] == "synth000")].iloc[:2]
    rest = simulator.shape_to_angles(*simulator.REST)
    a0 = _read(v2_data / f"{first['filename'].iloc[0]}.hdf5")[0]["joint_angles"]
    a1 = _read(v2_data / f"{first['filename'].iloc[1]}.hdf5")[0]["joint_angles"]
    valid = lambda a: a[~np.all(a == 0.0, axis=1)]
    last_posture = simulator.STAGE_SETS["v2"][first["stage"].iloc[0]][-1]
    target = simulator.shape_to_angles(*simulator.STATIC_SHAPES[last_posture])
    start = valid(a1[:int(0.4 * 2000)]).mean(0)  # the first 0.4 s of the next stage
    assert np.abs(start - target).mean() < 0.5 * np.abs(rest - target).mean()
    for a in (a0, a1):
        assert np.abs(valid(a[-int(0.4 * 2000):]).mean(0) - rest).mean() < 0.15  # back at rest


def test_lead_seconds_zero_starts_the_first_gesture_at_once():
    rng = lambda: np.random.default_rng(3)
    style = np.zeros(20)
    with_lead = simulator.stage_trajectory(("Fist",), 4.0, rng(), style, start="Spread", lead_seconds=1.0)
    spread = simulator.shape_to_angles(*simulator.STATIC_SHAPES["Spread"])
    assert np.abs(with_lead[:90] - spread).mean() < 0.1  # the first second: still in the previous posture
    without = simulator.stage_trajectory(("Fist",), 4.0, rng(), style, start="Spread", lead_seconds=0.0)
    assert np.abs(without[30:90] - spread).mean() > 0.3


def test_users_hold_each_posture_their_own_way():
    def fists(style):
        offsets = [simulator.posture_offsets(np.random.default_rng(u), style) for u in range(2)]
        return [simulator.stage_trajectory(("Fist",), 3.0, np.random.default_rng(9), np.zeros(20), o)[120:200].mean(0)
                for o in offsets]
    same, different = fists(0.0), fists(0.3)
    assert np.abs(same[0] - same[1]).max() < 1e-9
    assert np.abs(different[0] - different[1]).mean() > 0.05


def test_ik_jitter_is_noise_of_the_angles_not_of_the_hand(tmp_path):
    small = dict(users=2, test_users=1, stage_seconds=2.0, sessions=1)
    clean = simulator.generate(simulator.SynthConfig(ik_jitter=0.0, **small), tmp_path / "clean")
    noisy = simulator.generate(simulator.SynthConfig(ik_jitter=0.05, **small), tmp_path / "noisy")
    name = pd.read_csv(clean / "metadata.csv")["filename"][0] + ".hdf5"
    a, b = _read(clean / name)[0], _read(noisy / name)[0]
    assert np.array_equal(a["emg"], b["emg"])  # EMG follows the hand, not the motion capture's error
    both = ~np.all(a["joint_angles"] == 0, axis=1) & ~np.all(b["joint_angles"] == 0, axis=1)
    diff = (b["joint_angles"] - a["joint_angles"])[both]
    assert 0.03 < diff.std() < 0.07
    steps = [np.abs(np.diff(x["joint_angles"][both], axis=0)).mean() for x in (a, b)]
    assert steps[1] > 3 * steps[0]  # jitter is high-frequency: sample-to-sample steps grow


def test_held_postures_drive_the_muscles_less_than_moving_into_them():
    user = simulator.draw_user(np.random.default_rng(0), difficulty=0.0)
    t = np.arange(8000) / 2000.0
    rest, fist = simulator.shape_to_angles(*simulator.REST), simulator.shape_to_angles(*simulator.STATIC_SHAPES["Fist"])
    q = rest + np.clip((t - 1.0) / 0.2, 0, 1)[:, None] * (fist - rest)

    def hold_over_move(hold_drive):
        cfg = simulator.SynthConfig(wrist_sources=0.0, effort_drift=0.0, hold_drive=hold_drive)
        emg = simulator.pose_to_emg(q, user, np.random.default_rng(1), cfg=cfg)
        return _rms(emg, slice(6000, 8000)) / _rms(emg, slice(1900, 2300))
    assert hold_over_move(0.3) < 0.8 * hold_over_move(1.0)


def test_wrist_muscles_and_effort_move_emg_that_pose_does_not():
    """At a fixed pose, the EMG envelope varies over time with wrist sources and effort drift, hardly without."""
    user = simulator.draw_user(np.random.default_rng(0), difficulty=0.0)
    q = _held("Point", 20000)

    def envelope_spread(**knobs):
        emg = simulator.pose_to_emg(q, user, np.random.default_rng(2), cfg=simulator.SynthConfig(**knobs)).astype(float)
        power = np.log((emg[2000:] ** 2).reshape(-1, 1000, 16).mean(1))  # 0.5 s bins
        return power.std(0).mean()
    still = envelope_spread(wrist_sources=0.0, effort_drift=0.0)
    assert envelope_spread(wrist_sources=1.0, effort_drift=0.0) > still + 0.1
    assert envelope_spread(wrist_sources=0.0, effort_drift=0.5) > still + 0.1


def test_sessions_differ_by_donning_and_grow_with_fatigue():
    user = simulator.draw_user(np.random.default_rng(0), difficulty=0.0)
    q = _held("Fist")
    cfg = simulator.SynthConfig(wrist_sources=0.0, effort_drift=0.0, fatigue=0.5)
    emg = lambda donning, progress=(0.0, 0.0): simulator.pose_to_emg(q, user, np.random.default_rng(4), donning, cfg,
                                                                 progress)
    base = emg(simulator.Donning())
    # One volts-per-unit constant per session, no renormalisation of a recording: twice the scale, twice the volts
    # (the fixed noise floor aside).
    assert 1.8 < _rms(emg(simulator.Donning(scale=2.0))) / _rms(base) < 2.05
    donnings = [simulator.draw_donning(np.random.default_rng(k), cfg) for k in range(2)]
    patterns = [np.sqrt((emg(d).astype(float) ** 2).mean(0)) for d in donnings]
    assert np.linalg.norm(patterns[0] / np.linalg.norm(patterns[0]) - patterns[1] / np.linalg.norm(patterns[1])) > 0.05
    tired = emg(simulator.Donning(), (1.0, 1.0))
    assert _rms(tired) > 1.3 * _rms(base)


def test_users_bands_sit_rotated_beyond_the_training_augmentation():
    cfg = simulator.SynthConfig(ring_rotation=2.5)
    rotations = [simulator.draw_user(np.random.default_rng(u), 0.5, cfg).rotation / (2 * np.pi / 16) for u in range(40)]
    assert max(np.abs(rotations)) > 1.5 and max(np.abs(rotations)) <= 2.5
    none = [simulator.draw_user(np.random.default_rng(u), 0.5, simulator.SynthConfig(ring_rotation=0.0)).rotation
            for u in range(5)]
    assert none == [0.0] * 5


def test_default_protocol_tests_many_users_and_trains_on_10_to_20():
    from bench import plugins
    synth_cfg = plugins.resolve({})["data"]["synth"]
    assert synth_cfg["test_users"] >= 10
    assert 10 <= synth_cfg["users"] - synth_cfg["test_users"] - synth_cfg["val_users"] <= 20
    assert synth_cfg["stages"] == "v2" and plugins.resolve({})["data"]["vocab"] == "synthetic-v2"
    assert synth_cfg["sessions"] >= 2 and synth_cfg["seed_per_run"]


def test_stages_v1_keep_the_synthetic_v1_vocabulary(tiny_data):
    from cpep.data.emg2pose import Emg2PoseData
    from cpep.data.gestures import load_vocab
    from cpep.data.windows import WindowSpec
    assert simulator.vocabulary(tiny_data) == "synthetic-v1"
    Emg2PoseData(tiny_data, load_vocab("synthetic-v1"), WindowSpec(2000, 1000, 10))


def test_stages_v1_with_the_default_vocabulary_is_refused_in_one_line():
    from bench import plugins
    from cpep.errors import ConfigError
    with pytest.raises(ConfigError, match="set data.vocab=synthetic-v1"):
        plugins.resolve({"data.synth.stages": "v1"})
    with pytest.raises(ConfigError, match="data.synth.stages takes 'v1' or 'v2', not 'v3'"):
        plugins.resolve({"data.synth.stages": "v3"})


# ------------------------------------------------------------------ the data seed follows the run seed

def _data_keys(runs):
    return {(r.variant.name, r.seed): simulator.SynthConfig(**r.config["data"]["synth"]).key() for r in runs}


def test_each_run_seed_reads_its_own_data_and_the_same_seed_the_same():
    from bench import suites
    from bench.run import planner
    suite = suites.load("smoke")
    keys = _data_keys(planner.plan(suite, seeds=(0, 1, 0)))
    assert keys["cpep", 0] != keys["cpep", 1]
    assert keys["cpep", 0] == keys["pose_mae", 0] and keys["cpep", 1] == keys["pose_mae", 1]
    again = _data_keys(planner.plan(suite, seeds=(0, 1)))
    assert again == keys
    runs = planner.plan(suite, seeds=(0, 1))
    assert runs[0].config["data"]["synth"]["seed"] == 0 and runs[1].config["data"]["synth"]["seed"] == 1
    assert runs[0].stages[0].key != runs[1].stages[0].key
    fixed = _data_keys(planner.plan(suite, seeds=(0, 1), overrides={"data.synth.seed_per_run": False,
                                                                    "data.synth.seed": 7}))
    assert fixed["cpep", 0] == fixed["cpep", 1] == simulator.SynthConfig(seed=7).key()


def test_calibration_prints_the_floor_and_the_ceiling_on_the_probe_selections(tmp_path):
    from typer.testing import CliRunner

    from bench.check import calibrate
    small = ["data.synth.users=4", "data.synth.test_users=2", "data.synth.stage_seconds=3",
             "data.synth.sessions=1", "linear_probe.max_iter=30",
             # one gesture per stage: pose separates the classes even on this little data
             "data.synth.stages=v1", "data.vocab=synthetic-v1"]
    args = [a for s in small for a in ("--set", s)] + ["--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(calibrate.app, args)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
            if line.startswith(("floor ", "ceiling ")) and ":" not in line}  # the table, not the verdicts
    assert float(rows["ceiling"][0]) > float(rows["floor"][0])  # pose tells the classes apart better than EMG power
    assert all(0.0 <= float(v) <= 1.0 for v in rows["ceiling"][:2] + rows["floor"][:2])
    assert "missed by" in result.output or "met" in result.output
    bad = CliRunner().invoke(calibrate.app, ["--set", "data.synth.users=0", "--runs-dir", str(tmp_path)])
    assert bad.exit_code == 2 and bad.output.strip().startswith("error: data.synth.users must be > 0")


def test_the_simulators_code_is_part_of_the_datas_key(tmp_path, monkeypatch):
    """Data written by an older simulator is never read as current: a new simulator writes a new dataset, and the
    stages trained on it get new keys."""
    from bench import suites
    from bench.run import fingerprint, planner
    from bench.run.store import Store
    simulator_files = {p.name for p in fingerprint.closure([Path(simulator.__file__)])}
    assert {"simulator.py", "pose.py", "emg.py", "config.py"} <= simulator_files
    tiny = {"data.synth.users": 2, "data.synth.test_users": 1, "data.synth.stage_seconds": 2.0,
            "data.synth.sessions": 1}
    plan = planner.plan(suites.load("smoke"), seeds=(0,), variants=["cpep"], overrides=tiny)
    root = Store(tmp_path).synthetic_root(plan[0].config["data"]["synth"])
    monkeypatch.setattr(fingerprint, "simulator", lambda: "0123456789abcdef")  # as after a change to the code
    changed = planner.plan(suites.load("smoke"), seeds=(0,), variants=["cpep"], overrides=tiny)
    assert not {s.key for s in changed[0].stages} & {s.key for s in plan[0].stages}
    assert Store(tmp_path).synthetic_root(changed[0].config["data"]["synth"]) != root


def test_users_written_by_several_processes_are_the_same_files(tmp_path):
    cfg = simulator.SynthConfig(users=3, test_users=1, stage_seconds=2.0, sessions=1)
    one, two = simulator.generate(cfg, tmp_path / "one", workers=1), simulator.generate(cfg, tmp_path / "two", workers=2)
    names = sorted(p.name for p in one.glob("*.hdf5"))
    assert names == sorted(p.name for p in two.glob("*.hdf5")) and len(names) == 3 * len(simulator.GESTURES)
    assert (one / "metadata.csv").read_text() == (two / "metadata.csv").read_text()
    assert all(np.array_equal(_read(one / name)[0], _read(two / name)[0]) for name in names)
