"""Statistics over seeds x held-out users (one estimate, its intervals, IQM, P(A > B)), the paper's claims, and the
per-user breakdown a real evaluation records."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import tiny_args
from scipy import stats as scipy_stats
from test_cli import cli, records
from test_report import fixture_suite, make_record  # noqa: F401 (a fixture)

from bench import suites
from bench.plugins import Embeddings, Method
from bench.report import build as report
from bench.report import claims, significance, stats, tables, write
from bench.run.evaluation import evaluate
from bench.run.store import Store
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.data.metadata import read_metadata
from cpep.errors import UserError
from cpep.probes import balanced_accuracy, embed, linear_probe, zero_shot

CLAIMS_SUITE = """
description = "every variant a claim compares"
seeds = [0, 1, 2]
""" + "".join(f"""
[[variants]]
name = "{name}"
method = "{method}"
label = "{name}"
group = "{group}"
set = {{ {setting} }}
""" for name, method, group, setting in (
    ("cpep", "cpep", "", ""), ("emg2pose", "tds_regression", "", ""), ("emg_mae", "emg_mae", "", ""),
    ("frozen_emg", "cpep", "", '"align.train_emg" = false'), ("random_init", "cpep", "", '"align.emg_init" = "random"'),
    ("avgpool", "cpep", "", '"embedding.pooling" = "mean"'), ("joint", "cpep", "", '"align.train_pose" = true'),
    ("patch50", "cpep", "patch_length", '"emg.patch" = 50'), ("patch100", "cpep", "patch_length", '"emg.patch" = 100'),
    ("patch400", "cpep", "patch_length", '"emg.patch" = 400')))
USERS = ("u1", "u2", "u3", "u4")
METRICS = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")


@pytest.fixture
def claims_suite(tmp_path) -> suites.Suite:
    path = tmp_path / "claims.toml"
    path.write_text(CLAIMS_SUITE)
    return suites.load(str(path))


def with_users(record: dict, by_user: dict[str, list[float]]) -> dict:
    """The record with per-user scores of its metrics (USERS in order) and each metric the mean of its users'."""
    record["by_user"] = {m: dict(zip(USERS, values)) for m, values in by_user.items()}
    record["metrics"] |= {m: float(np.mean(values)) for m, values in by_user.items()}
    return record


def user_records(suite, scores: dict[str, dict[int, list[float]]], metric="lp_id") -> list[dict]:
    """Done records of each variant and seed whose `metric` has these per-user scores."""
    return [with_users(make_record(suite, v, s, (0.5, 0.5, 0.5, 0.5)), {metric: users})
            for v, by_seed in scores.items() for s, users in by_seed.items()]


def synthetic_records(suite, scores: dict[str, dict[int, list[float]]], metric="lp_id") -> list[dict]:
    """As user_records, on synthetic data drawn per seed (data.synth.seed 100 + seed): each seed its own users."""
    return [with_users(make_record(suite, v, s, (0.5,) * 4, dataset="synthetic",
                                   **{"data.vocab": "synthetic-v1", "data.synth.seed": 100 + s}), {metric: users})
            for v, by_seed in scores.items() for s, users in by_seed.items()]


# one estimate, whatever the interval

def test_the_estimate_is_the_mean_over_seeds_of_each_seeds_users_whatever_the_interval():
    """Seed a: four users at 0; seed b: one user at 1. Each seed's mean counts once: (0 + 1) / 2, not the 1/5 of
    the five scores pooled."""
    strata = [np.zeros((4, 1)), np.ones((1, 1))]
    found = {m: stats.estimate(strata, stats.mean_of, m, min_seeds=2) for m in stats.CI_METHODS}
    assert {ci.mean for ci in found.values()} == {0.5} and {ci.n for ci in found.values()} == {2}
    one = stats.estimate([np.r_[np.zeros(4), 1.0].reshape(5, 1)], stats.mean_of)
    assert one.mean == pytest.approx(0.2) and not one.has_ci  # one seed: nothing of the spread between runs


@pytest.mark.parametrize("method", stats.CI_METHODS)
def test_the_tables_estimate_does_not_change_with_the_interval(fixture_suite, method):
    """Seeds whose users' mean differs from the seed's overall score: every --ci gives the users' mean."""
    n = stats.least_seeds(method, crossed=False)
    recs = synthetic_records(fixture_suite, {"cpep": {s: [0.4, 0.5, 0.6, 0.9 + 0.01 * s] for s in range(n)}})
    for r in recs:
        r["metrics"]["lp_id"] = 0.5  # the overall balanced accuracy over all windows: another number
    s = report.build(fixture_suite, recs, method).summary.set_index(["variant", "metric"]).loc[("cpep", "lp_id")]
    assert s["mean"] == pytest.approx(0.6 + 0.0025 * (n - 1) / 2) and s["unit"] == "seeds x users"
    assert s["ci_low"] < s["mean"] < s["ci_high"]


def test_an_interval_is_wider_when_the_same_users_disagree(fixture_suite):
    """Two variants with the same per-seed means: one whose users agree, one whose users scatter. Where every seed
    tests the same users (emg2pose records) the users' variance is part of the interval; where each seed draws
    its own (synthetic data per seed), it is already in the seeds' means, which are equal."""
    agree = {0: [0.60, 0.61, 0.59, 0.60], 1: [0.70, 0.71, 0.69, 0.70], 2: [0.65, 0.66, 0.64, 0.65]}
    scatter = {s: [m - 0.3, m + 0.3, m - 0.1, m + 0.1] for s, m in ((0, 0.6), (1, 0.7), (2, 0.65))}
    built = report.build(fixture_suite, user_records(fixture_suite, {"cpep": agree, "frozen_emg": scatter}))
    s = built.summary.set_index(["variant", "metric"])
    a, b = s.loc[("cpep", "lp_id")], s.loc[("frozen_emg", "lp_id")]
    assert a["unit"] == b["unit"] == "seeds x users" and a["same_users"] and b["same_users"]
    assert a["mean"] == pytest.approx(0.65) and b["mean"] == pytest.approx(0.65)
    assert b["ci_high"] - b["ci_low"] > 2 * (a["ci_high"] - a["ci_low"])
    # a metric without per-user scores keeps its seeds-only mean and interval beside them
    assert s.loc[("cpep", "lp_unseen"), "mean"] == pytest.approx(0.5) and s.loc[("cpep", "lp_unseen"), "n"] == 3
    md = tables.markdown(built)
    assert "plus the users' jackknife variance" in md
    assert "seeds only (no per-user breakdown" in md and "lp_unseen" in md  # the other metrics have no users
    nested = report.build(fixture_suite, synthetic_records(fixture_suite, {"cpep": agree, "frozen_emg": scatter}))
    n = nested.summary.set_index(["variant", "metric"])
    assert not n.loc[("cpep", "lp_id"), "same_users"]
    assert n.loc[("cpep", "lp_id"), "ci_low"] == pytest.approx(n.loc[("frozen_emg", "lp_id"), "ci_low"])


def test_without_per_user_scores_the_estimates_are_over_the_seeds_and_say_so(fixture_suite):
    from test_report import fixture_records
    built = report.build(fixture_suite, fixture_records(fixture_suite))
    assert set(built.summary.loc[built.summary["n"] > 0, "unit"]) == {"seeds"}
    md = tables.markdown(built)
    assert "no record has a per-user breakdown: every estimate is over the seeds' overall scores" in md
    assert "0.820 ± 0.050" in md  # patch50's seeds 0.80, 0.82, 0.84: t(2) 4.303 x 0.02 / sqrt(3)


@pytest.mark.parametrize("method, seeds", [("bootstrap", 3), ("bca", 3)])
def test_an_interval_below_the_seeds_it_serves_is_refused_in_one_line(fixture_suite, method, seeds):
    recs = synthetic_records(fixture_suite, {"cpep": {s: [0.5, 0.6] for s in range(seeds)}})
    needed = stats.least_seeds(method, crossed=False)
    with pytest.raises(UserError, match=f"--ci {method} needs {needed} seeds or more .* these records have {seeds}"):
        report.build(fixture_suite, recs, method)


def test_bca_is_refused_where_every_seed_tests_the_same_users(fixture_suite):
    recs = user_records(fixture_suite, {"cpep": {s: [0.5, 0.6 + 0.01 * s] for s in range(20)}})
    with pytest.raises(UserError, match="--ci bca resamples the seeds only"):
        report.build(fixture_suite, recs, "bca")
    assert report.build(fixture_suite, recs, "bootstrap").summary["ci_low"].notna().any()


# IQM

def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm([np.arange(1.0, 9.0).reshape(8, 1)]).mean == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    outlier = np.array([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 100.0]).reshape(8, 1)
    assert stats.iqm([outlier]).mean == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    for n in range(1, 12):
        x = rng.random(n)
        assert stats.iqm([x.reshape(n, 1)]).mean == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    # over seeds: each seed's IQM (of 1..4: 2.5, of 5..8: 6.5), averaged
    ci = stats.iqm([np.arange(1.0, 5.0).reshape(4, 1), np.arange(5.0, 9.0).reshape(4, 1)])
    assert ci.mean == pytest.approx(4.5) and ci.low < 2.5 and ci.high > 6.5


def test_iqm_is_a_column_of_table_csv_and_of_the_markdown_table(fixture_suite, tmp_path):
    scores = {"cpep": {s: [0.1, 0.6, 0.6, 0.9 + 0.01 * s] for s in range(3)}}
    built = report.build(fixture_suite, user_records(fixture_suite, scores))
    write.write_tables(built, tmp_path, ("md", "csv"))
    row = next(r for r in csv.DictReader((tmp_path / "table.csv").open())
               if (r["variant"], r["metric"]) == ("cpep", "lp_id"))
    assert float(row["iqm"]) == pytest.approx(0.6)  # each seed's 4 scores: 1 cut at each end leave two at 0.6
    assert float(row["mean"]) == pytest.approx(0.55 + 0.0025)  # seeds' means 0.55 + 0.0025 s, s = 0, 1, 2
    # every seed tests the same users, so who is tested widens the IQM's interval too, though each seed's IQM is 0.6
    assert row["unit"] == "seeds x users" and float(row["iqm_low"]) < 0.6 < float(row["iqm_high"])
    md = (tmp_path / "table.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "| LP in-dist | IQM | paper |" in header
    cpep = next(line for line in md.splitlines() if line.startswith("| CPEP |")).split(" | ")
    half = (float(row["ci_high"]) - float(row["ci_low"])) / 2  # the users' spread on every seed: far above 0.006
    iqm_half = (float(row["iqm_high"]) - float(row["iqm_low"])) / 2
    assert cpep[2] == f"0.552 ± {half:.3f}" and half > 0.1 and cpep[3] == f"0.600 ± {iqm_half:.3f}"


# P(A > B)

@pytest.mark.parametrize("a_minus_b, expected", [(0.1, 1.0), (0.0, 0.5), (-0.1, 0.0)])
def test_probability_of_improvement_on_constructed_cases(a_minus_b, expected):
    strata = [np.c_[b + a_minus_b, b] for b in (np.array([0.3, 0.5, 0.7]), np.array([0.4, 0.6, 0.8]))]
    ci = stats.improvement(strata * (stats.FRACTION_SEEDS // 2))
    assert (ci.mean, ci.low, ci.high) == (expected, expected, expected)
    few = stats.improvement(strata)  # a fraction of users on two seeds: no interval
    assert few.mean == expected and not few.has_ci


def test_probability_of_improvement_counts_matched_users_and_ties_as_half():
    # per seed, A above B on two users, tied on one, below on one: (2 + 0.5) / 4
    strata = [np.array([[0.6, 0.5], [0.7, 0.5], [0.5, 0.5], [0.4, 0.5]])] * stats.FRACTION_SEEDS
    ci = stats.improvement(strata)
    assert (ci.mean, ci.low, ci.high) == pytest.approx((0.625,) * 3)  # each seed its own users: no spread at all
    same = stats.improvement(stats.Strata.of(strata, crossed=True))  # the same four users: who is tested matters
    assert same.mean == pytest.approx(0.625) and same.low < 0.625 < same.high and same.p > 0.05


def test_improvement_csv_holds_every_ordered_pair_and_the_terminal_each_against_cpep(fixture_suite, tmp_path):
    from rich.console import Console
    base = [0.5, 0.6, 0.7, 0.8]
    seeds = range(stats.FRACTION_SEEDS)
    scores = {"cpep": {s: base for s in seeds}, "frozen_emg": {s: [x - 0.1 for x in base] for s in seeds},
              "avgpool": {s: base for s in seeds}, "patch50": {s: [x + 0.05 for x in base] for s in seeds}}
    built = report.build(fixture_suite, user_records(fixture_suite, scores))
    write.write_tables(built, tmp_path, ("csv",))
    rows = {(r["a"], r["b"]): r for r in csv.DictReader((tmp_path / "improvement.csv").open())
            if r["metric"] == "lp_id"}
    assert len(rows) == 4 * 3
    for (a, b), p in ((("frozen_emg", "cpep"), 0.0), (("cpep", "frozen_emg"), 1.0), (("avgpool", "cpep"), 0.5),
                      (("patch50", "frozen_emg"), 1.0)):
        r = rows[(a, b)]
        assert float(r["p_a_above_b"]) == float(r["ci_low"]) == float(r["ci_high"]) == p
        assert r["unit"] == "seeds x users" and r["strata"] == str(4 * len(seeds))
        assert r["seeds"] == " ".join(map(str, seeds))
    console = Console(record=True, width=80)
    tables.print_report(built, console)
    printed = console.export_text()
    assert "P(variant > CPEP)" in printed and max(map(len, printed.splitlines())) <= 80
    part = printed.split("P(variant > CPEP)")[1].splitlines()
    frozen = next(line for line in part if line.startswith("ablation: EMG"))
    words = frozen.split()
    assert words[words.index(str(4 * len(seeds))) + 1] == "0.000"


# the claims

def claim_records(suite, joint_status=("failed", "failed", "failed")) -> list[dict]:
    """Per-user scores (4 users x 3 seeds) built so that each claim gets a known verdict."""
    base = np.array([0.60, 0.62, 0.64, 0.66])
    shift = {  # variant -> (lp_id, lp_unseen, zs_id, zs_unseen) added to CPEP's scores, per seed
        "emg2pose": ((-0.10,) * 3, (0.05,) * 3, (0.0,) * 3, (-0.2,) * 3),
        "emg_mae": ((-0.05,) * 3, (0.0, 0.001, -0.001), (0.0,) * 3, (0.0,) * 3),
        "frozen_emg": ((-0.20,) * 3, (-0.10,) * 3, (-0.15,) * 3, (-0.05,) * 3),
        "random_init": ((0.0, 0.002, -0.002), (0.10, 0.10, -0.05), (0.0,) * 3, (0.0,) * 3),
        "avgpool": ((0.05,) * 3, (0.0,) * 3, (0.0,) * 3, (0.0,) * 3),
        "patch50": ((0.10,) * 3,) * 4, "patch100": ((0.05,) * 3,) * 4, "patch400": ((-0.05,) * 3,) * 4,
        "cpep": ((0.0,) * 3,) * 4,
    }
    out = []
    for variant, per_metric in shift.items():
        for seed in range(3):
            by_user = {m: list(base + d[seed] + 0.01 * seed) for m, d in zip(METRICS, per_metric)}
            rec = make_record(suite, variant, seed, (0.5,) * 4)
            if variant in ("emg2pose", "emg_mae"):
                by_user = {m: v for m, v in by_user.items() if m.startswith("lp")}
                rec["metrics"] = {"lp_id": 0.5, "lp_unseen": 0.5, "zs_id": None, "zs_unseen": None}
                rec["not_applicable"] = {"zs_id": "none", "zs_unseen": "none"}
            out.append(with_users(rec, by_user))
    reasons = {"failed": "align: TrainingDiverged: loss became nan in epoch 3", "crashed": "align: OSError: disk"}
    for seed, status in enumerate(joint_status):
        done = status == "done"
        out.append(make_record(suite, "joint", seed, (0.5,) * 4 if done else None,
                               status="done" if done else "failed", error=None if done else reasons[status]))
    return out


def verdicts(suite, recs) -> dict[str, str]:
    built = report.build(suite, recs)
    return dict(zip(built.claims["claim"], built.claims["verdict"]))


def test_each_claim_gets_the_verdict_its_records_call_for(claims_suite):
    v = verdicts(claims_suite, claim_records(claims_suite))
    assert v["CPEP above the emg2pose baseline, LP in-dist (+21 %)"] == "reproduced"
    assert v["CPEP above the emg2pose baseline, LP unseen (+72 %)"] == "contradicted"  # excludes zero below
    assert v["CPEP above EMG-MAE, LP in-dist"] == "reproduced"
    assert v["CPEP above EMG-MAE, LP unseen"] == "inconclusive"  # within 0.001 of zero
    assert all(v[f"EMG encoder frozen far below CPEP, {n}"] == "reproduced"
               for n in ("LP in-dist", "LP unseen", "ZS in-dist", "ZS unseen"))
    assert v["EMG encoder random init below CPEP, LP in-dist"] == "inconclusive"
    # +0.10, +0.10, -0.05 over the seeds: the interval spans zero, so not contradicted, however far the estimate
    assert v["EMG encoder random init below CPEP, LP unseen"] == "inconclusive"
    assert v["EMG encoder random init below CPEP, ZS in-dist"] == "inconclusive"  # an exact tie
    assert v["[CLS] >= AvgPool, LP in-dist"] == "contradicted"
    patches = "longer EMG patches worse (Spearman rho over EMG patch 50, 100, 200, 400)"
    assert all(v[f"{patches}, {n}"] == "reproduced" for n in ("LP in-dist", "ZS unseen"))
    assert v["joint training (pose encoder not frozen) diverges"] == "reproduced"
    assert v["CPEP's ZS unseen above emg2pose's LP unseen"] == "contradicted"  # 0.05 below
    built = report.build(claims_suite, claim_records(claims_suite)).claims.set_index("claim")
    row = built.loc["CPEP above the emg2pose baseline, LP in-dist (+21 %)"]
    per_seed = [(0.63 + 0.01 * s) / (0.53 + 0.01 * s) - 1 for s in range(3)]  # each seed's users' means
    assert row["paper"] == "+21 %" and row["estimate"] == pytest.approx(np.mean(per_seed))
    assert row["measured"] == "+18.5 %" and row["unit"] == "seeds x users" and row["seeds"] == "0 1 2"
    assert row["size"] == "smaller"  # +21 % lies above our interval
    assert built.loc["EMG encoder frozen far below CPEP, LP in-dist", "paper"] == "-0.410"
    assert built.loc["CPEP above EMG-MAE, LP in-dist", "paper"] == "~+0.232"
    assert built.loc[f"{patches}, LP in-dist", "p_value"] == pytest.approx(2 / 24 ** 3)  # one order on 3 seeds
    assert built.loc[f"{patches}, LP in-dist", "size"] == "direction only"


def test_an_inconclusive_verdict_says_whether_the_effect_is_absent_or_the_run_too_small(claims_suite):
    built = report.build(claims_suite, claim_records(claims_suite)).claims.set_index("claim")
    absent = built.loc["CPEP above EMG-MAE, LP unseen"]  # 0 +- 0.001 against the paper's ~+0.236
    assert absent["reading"].startswith("no effect of the paper's size (0.236): the interval excludes it")
    small = built.loc["EMG encoder random init below CPEP, LP unseen"]  # seeds at +0.10, +0.10, -0.05
    assert small["reading"].startswith("run too small to tell: ") and small["size"] == "consistent"
    spread = stats.spread(stats.Strata.of([np.full((4, 2), [d, 0.0]) for d in (0.10, 0.10, -0.05)], True),
                          stats.difference_of)
    assert small["seeds_needed"] == str(significance.seeds_needed(-0.057, spread, 0.05))
    assert float(small["detectable"]) == pytest.approx(significance.detectable(spread, 0.05), abs=5e-4)
    decided = built.loc["EMG encoder frozen far below CPEP, LP in-dist"]
    assert decided["reading"] == "" and decided["size"] == "smaller"


def test_holm_turns_a_lone_moderate_p_value_among_many_claims_inconclusive(claims_suite):
    """random init below CPEP by 0.03, 0.018, 0.042 on the three seeds (claim_records' 0, +0.002, -0.002 added):
    t(2) gives p = 0.049 alone; among the claims, Holm multiplies it by the number of claims not yet rejected."""
    recs = claim_records(claims_suite)
    for r in recs:
        if r["variant"] == "random_init":
            r["by_user"]["lp_id"] = {u: x - (0.03, 0.02, 0.04)[r["seed"]] for u, x in r["by_user"]["lp_id"].items()}
    row = report.build(claims_suite, recs).claims.set_index("claim").loc[
        "EMG encoder random init below CPEP, LP in-dist"]
    assert row["p_value"] == pytest.approx(scipy_stats.ttest_1samp([-0.03, -0.018, -0.042], 0.0).pvalue)
    assert row["verdict"] == "reproduced" and row["verdict_holm"] == "inconclusive"
    assert row["p_value"] < 0.05 < row["p_value_holm"]


def test_with_sign_flips_three_seeds_cannot_decide_a_comparison(claims_suite):
    built = report.build(claims_suite, claim_records(claims_suite), test="permutation").claims.set_index("claim")
    compared = built[built["kind"].isin(["difference", "relative"])]
    assert set(compared["verdict"]) == {"inconclusive"} and (compared["p_value"] >= 0.25).all()
    assert compared["reading"].str.startswith("run too small: a sign-flip test of 3 seeds cannot reach p < 0.25").all()
    assert built.loc["joint training (pose encoder not frozen) diverges", "verdict"] == "reproduced"


def test_on_synthetic_data_a_claim_is_checked_for_its_direction_only(claims_suite):
    recs = [r | {"dataset": "synthetic"} for r in claim_records(claims_suite)]
    found = report.build(claims_suite, recs).claims.set_index("claim")
    row = found.loc["EMG encoder frozen far below CPEP, LP in-dist"]
    assert row["paper"] == "" and row["size"] == claims.NO_SIZE and row["seeds_needed"] == ""
    assert row["verdict"] == "reproduced"


def test_a_trend_on_one_seed_is_too_small_to_decide():
    suite = suites.load("data_fraction")
    recs = [with_users(make_record(suite, v, 0, (0.5,) * 4), {m: [0.5 + 0.1 * f] * 4 for m in METRICS})
            for v, f in (("cpep", 1.0), ("fraction40", 0.4), ("fraction20", 0.2), ("fraction10", 0.1))]
    row = report.build(suite, recs).claims.iloc[0]
    assert row["measured"] == "+1.00" and row["p_value"] == pytest.approx(2 / 24) and row["verdict"] == "inconclusive"
    assert row["reading"] == "run too small: 1 seed cannot reach p < 0.0833"


@pytest.mark.parametrize("joint, expected", [(("done", "done", "done"), "contradicted"),
                                             (("failed", "done", "done"), "inconclusive"),
                                             (("failed", "crashed", "failed"), "inconclusive")])
def test_joint_training_diverges_only_when_every_run_diverged(claims_suite, joint, expected):
    assert verdicts(claims_suite, claim_records(claims_suite, joint))[
        "joint training (pose encoder not frozen) diverges"] == expected


@pytest.mark.parametrize("slope, expected", [(0.1, "reproduced"), (-0.1, "contradicted"), (0.0, "inconclusive")])
def test_the_data_efficiency_claim_ranks_the_data_fraction_against_each_metric(slope, expected):
    suite = suites.load("data_fraction")
    base = np.array([0.50, 0.55, 0.45, 0.52])
    recs = [with_users(make_record(suite, v, s, (0.5,) * 4), {m: list(base + slope * f + 0.01 * s) for m in METRICS})
            for v, f in (("cpep", 1.0), ("fraction40", 0.4), ("fraction20", 0.2), ("fraction10", 0.1))
            for s in range(3)]
    found = verdicts(suite, recs)
    claim = "CPEP better with more paired data (Spearman rho over data fraction 0.1, 0.2, 0.4, 1)"
    assert {n: found[f"{claim}, {n}"] for n in ("LP in-dist", "LP unseen", "ZS in-dist", "ZS unseen")} == {
        n: expected for n in ("LP in-dist", "LP unseen", "ZS in-dist", "ZS unseen")}


def test_the_verdict_rule_is_even_handed():
    assert claims.verdict(0.1, 0.01, 1, 0.05) == "reproduced"
    assert claims.verdict(-0.1, 0.01, -1, 0.05) == "reproduced"
    assert claims.verdict(-0.1, 0.01, 1, 0.05) == "contradicted"
    assert claims.verdict(0.1, 0.01, -1, 0.05) == "contradicted"  # the same on either side
    # an estimate however far on the other side, with an interval that holds zero: inconclusive, both ways
    assert claims.verdict(-0.3, 0.2, 1, 0.05) == claims.verdict(0.3, 0.2, 1, 0.05) == "inconclusive"
    assert claims.verdict(0.1, float("nan"), 1, 0.05) == "inconclusive"  # one seed: no test
    assert claims.verdict(0.1, 0.04, 1, 0.01) == "inconclusive"  # alpha is the caller's


@pytest.mark.parametrize("paper, low, high, side, expected", [
    (0.72, 0.096, 0.233, 1, "smaller"), (0.2, 0.096, 0.233, 1, "consistent"), (0.05, 0.096, 0.233, 1, "larger"),
    (-0.41, -0.102, -0.042, -1, "smaller"), (-0.05, -0.102, -0.042, -1, "consistent"),
    (-0.02, -0.102, -0.042, -1, "larger"), (0.3, -0.2, -0.1, 1, "smaller"), (0.2, float("nan"), float("nan"), 1, "")])
def test_the_size_column_places_the_papers_size_against_our_interval(paper, low, high, side, expected):
    assert claims.size_verdict(paper, low, high, side) == expected


def test_claims_are_written_printed_and_skipped_without_their_variants(claims_suite, fixture_suite, tmp_path):
    from rich.console import Console
    store = Store(tmp_path / "results")
    for r in claim_records(claims_suite):
        path = store.record_path(r["suite"], f"{r['dataset']}-{r['data_key']}", r["variant"], r["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    console = Console(record=True, width=80)
    out = report.show(claims_suite, store, console, out=tmp_path / "rep", figures=False)
    md = (out / "claims.md").read_text()
    assert "| CPEP above the emg2pose baseline, LP in-dist (+21 %) | +21 % | +18.5 % |" in md
    assert claims.rule(claims.Settings()) in md
    header = "| claim | paper | measured | interval | p | verdict | Holm | size | detectable (80 %) | seeds needed |"
    assert header in md
    rows = list(csv.DictReader((out / "claims.csv").open()))
    assert len(rows) == 2 + 2 + 4 + 4 + 4 + 4 + 1 + 1
    assert {r["verdict"] for r in rows} == set(claims.VERDICTS)
    assert {"p_value", "p_value_holm", "verdict_holm", "size", "detectable", "seeds_needed", "reading"} <= set(rows[0])
    tex = (out / "claims.tex").read_text()
    assert "Holm" in tex and "Seeds needed" in tex and "Inconclusive: why" in tex and "Family: the 21 claims" in tex
    printed = console.export_text()
    assert "the paper's claims" in printed and "…" not in printed and max(map(len, printed.splitlines())) <= 80
    # the fixture suite has no emg2pose, random init or joint training: those rows are left out
    from test_report import fixture_records
    found = report.build(fixture_suite, fixture_records(fixture_suite)).claims["claim"]
    assert not any("emg2pose" in c or "random init" in c or "joint" in c for c in found)
    assert any(c.startswith("EMG encoder frozen") for c in found)


# the per-user breakdown of a real evaluation

class Features(Method):
    """An LP and zero-shot from fixed features of the windows: no training."""

    def embeddings(self, cfg, data, models):
        def pose(batch):
            return batch["pose"].mean(-1)[:, :16]

        def emg(batch):
            return batch["emg"].pow(2).mean(-1)
        return Embeddings(torch.nn.Identity(), lp=emg, zs_query=emg, zs_reference=pose)


def test_breakdowns_leave_the_overall_scores_as_they_were(tiny_data, tiny_config):
    data = open_data(Data.of(tiny_config), tiny_data)
    values, _, found = evaluate(tiny_config, data, torch.device("cpu"), Features(), {})
    probe, k = tiny_config["linear_probe"], tiny_config["zero_shot"]["k"]
    for kind in ("id", "unseen"):
        n = len(data.vocab.classes(kind))
        method = Features().embeddings(tiny_config, data, {})
        train, test = (embed(method.lp, data.selection(f"{kind}_{side}"), torch.device("cpu"))
                       for side in ("train", "test"))
        assert values[f"lp_{kind}"] == linear_probe(*train, *test, n, probe["weight_decay"], probe["max_iter"])
        references = embed(method.zs_reference, data.selection(f"{kind}_train"), torch.device("cpu"))
        assert values[f"zs_{kind}"] == zero_shot(test[0], *references, test[1], n, k)
        users = data.window_groups(f"{kind}_test")["user"]
        assert set(found["by_user"][f"lp_{kind}"]) == set(users)  # one held-out user in the tiny data
    assert "by_generalization" not in found  # the test windows of a class set share one generalization


def test_scores_by_group_are_each_groups_balanced_accuracy():
    from bench.run.evaluation import _scores_by
    pred, labels = torch.tensor([0, 1, 1, 1, 0, 0]), torch.tensor([0, 1, 0, 1, 0, 1])
    users = np.array(["b", "b", "b", "a", "a", "a"])
    assert _scores_by(pred, labels, 2, users) == {
        "a": balanced_accuracy(pred[3:], labels[3:], 2), "b": balanced_accuracy(pred[:3], labels[:3], 2)}
    assert _scores_by(pred, labels, 2, users)["b"] == pytest.approx((1 / 2 + 1) / 2)


def test_generalization_is_a_breakdown_only_where_the_test_windows_hold_several_values():
    from bench.run.evaluation import _groups

    class Data:
        def __init__(self, generalization):
            self.found = {"user": np.array(["a", "a", "b"]), "generalization": np.array(generalization)}

        def window_groups(self, selection):
            return self.found

    assert set(_groups(Data(["user", "user", "user"]), "id_test", 3)) == {"user"}
    assert set(_groups(Data(["user", "user_stage", "user"]), "id_test", 3)) == {"user", "generalization"}
    with pytest.raises(ValueError, match="3 windows embedded"):
        _groups(Data(["user"] * 2), "id_test", 3)  # a generalization for two of the three windows
    assert _groups(object(), "id_test", 3) == {}  # a dataset that does not say


def test_a_tiny_run_records_each_held_out_users_scores(tmp_path):
    results = tmp_path / "results"
    cli("run", "--suite", "smoke", "--variants", "cpep", "--seeds", "0", "--runs-dir", results, *tiny_args(),
        "--set", "data.synth.users=5", "--set", "data.synth.test_users=2")
    (rec,) = records(results).values()
    assert rec["status"] == "done", rec["error"]
    (root,) = (results / "data").glob("synthetic-*")
    meta = read_metadata(root)
    held_out = set(meta.loc[meta["held_out_user"], "user"])
    assert set(rec["by_user"]) == set(METRICS)
    for metric, by_user in rec["by_user"].items():
        assert set(by_user) == held_out and len(held_out) == 2, metric
        assert all(0 <= v <= 1 for v in by_user.values())
    assert "by_generalization" not in rec
    built = report.build(suites.load("smoke"), [rec])
    s = built.summary.set_index(["variant", "metric"]).loc[("cpep", "lp_id")]
    assert s["unit"] == "seeds x users" and s["iqm"] == pytest.approx(np.mean(list(rec["by_user"]["lp_id"].values())))
