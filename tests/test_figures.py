"""The report's figures draw the tables' estimates and intervals, and their titles say which intervals."""

from __future__ import annotations

import numpy as np
import pytest
from test_report import fixture_suite  # noqa: F401 (a fixture)
from test_stats import user_records

from bench.report import build as report
from bench.report import stats


def drawn_by(monkeypatch, name: str) -> list[tuple]:
    """(axes, args, kwargs) of every call of matplotlib's Axes.<name> from now on."""
    import matplotlib.pyplot as plt
    calls, real = [], getattr(plt.Axes, name)
    monkeypatch.setattr(plt.Axes, name, lambda ax, *a, **k: calls.append((ax, a, k)) or real(ax, *a, **k))
    return calls


def test_the_figures_draw_the_tables_estimates_and_intervals(fixture_suite, tmp_path, monkeypatch):
    """With per-user scores on the same users every seed, the bars are the tables' estimates: two variants with the
    same per-seed means get the tables' different intervals (the users' term), not one recomputed over seeds; so do
    the patch-length points, and a variant on one seed gets no error bar."""
    from bench.report import figures
    agree = {0: [0.60, 0.61, 0.59, 0.60], 1: [0.70, 0.71, 0.69, 0.70], 2: [0.65, 0.66, 0.64, 0.65]}
    scatter = {s: [m - 0.3, m + 0.3, m - 0.1, m + 0.1] for s, m in ((0, 0.6), (1, 0.7), (2, 0.65))}
    recs = user_records(fixture_suite, {"cpep": agree, "frozen_emg": scatter, "patch50": scatter,
                                        "patch400": {0: agree[0]}})
    built = report.build(fixture_suite, recs)
    s = built.summary.set_index(["variant", "metric"])
    bars, errors = drawn_by(monkeypatch, "barh"), drawn_by(monkeypatch, "errorbar")
    figures.bars(built, tmp_path)
    ((ax, (rows, widths), _),) = [c for c in bars if c[0].get_title() == "LP in-dist"]
    ((_, (means, at), k),) = [c for c in errors if c[0] is ax]
    assert list(at) == [r for r in rows if built.variants[r] != "patch400"]  # one seed: a bar, no interval
    for row, width in zip(rows, widths):
        assert width == pytest.approx(s.loc[(built.variants[row], "lp_id"), "mean"])
    lengths = np.asarray(k["xerr"])
    for i, row in enumerate(at):
        r = s.loc[(built.variants[row], "lp_id")]
        assert lengths[:, i] == pytest.approx([r["mean"] - r["ci_low"], r["ci_high"] - r["mean"]])
    assert lengths[:, list(at).index(built.variants.index("frozen_emg"))].sum() > 2 * lengths[
        :, list(at).index(built.variants.index("cpep"))].sum()
    # each figure's title names the interval of what it draws: here only lp_id has per-user scores
    users = "plus the users' jackknife variance"
    assert users in figures._subtitle(built, built.summary[built.summary["metric"] == "lp_id"])
    seeds_only = figures._subtitle(built, built.summary[built.summary["metric"] == "lp_unseen"])
    assert stats.describe("t", 0.95) in seeds_only and users not in seeds_only
    errors.clear()
    figures.patch_length(built, tmp_path)
    ((ax, (patches, means), k),) = [c for c in errors if c[0].get_title() == "LP in-dist"]
    assert sorted(patches) == [50, 200]  # patch400 has one seed: a point, no bar
    for patch, variant, i in ((50, "patch50", list(patches).index(50)), (200, "cpep", list(patches).index(200))):
        r = s.loc[(variant, "lp_id")]
        assert np.asarray(k["yerr"])[:, i] == pytest.approx([r["mean"] - r["ci_low"], r["ci_high"] - r["mean"]])


def test_performance_profiles_draw_the_fraction_of_users_above_each_threshold(fixture_suite, tmp_path, monkeypatch):
    """CPEP's four users score 0.3, 0.5, 0.7, 0.9 on every seed: the profile at 0.6 is 2 of 4 users. The figure
    draws report.profiles with its band, one line per variant that has per-user scores; a fraction of users gets
    a band only from stats.FRACTION_SEEDS seeds."""
    from bench.report import figures
    seeds = range(stats.FRACTION_SEEDS)
    recs = user_records(fixture_suite, {"cpep": {s: [0.3, 0.5, 0.7, 0.9] for s in seeds},
                                        "frozen_emg": {s: [0.2, 0.3, 0.4, 0.5 + 0.1 * (s % 2)] for s in seeds}})
    built = report.build(fixture_suite, recs)
    profile = built.profiles.set_index(["variant", "metric", "threshold"])
    assert profile.loc[("cpep", "lp_id", 0.6), "fraction"] == 0.5
    assert profile.loc[("cpep", "lp_id", 0.0), "fraction"] == 1.0
    assert profile.loc[("cpep", "lp_id", 1.0), "fraction"] == 0
    frozen = profile.loc[("frozen_emg", "lp_id", 0.5)]  # 0 of 4 users on even seeds, 1 of 4 on odd ones
    assert frozen["fraction"] == 0.125 and 0 <= frozen["low"] < 0.125 < frozen["high"] <= 1
    assert set(built.profiles["metric"]) == {"lp_id"}  # the other metrics have no per-user scores
    lines, bands = drawn_by(monkeypatch, "plot"), drawn_by(monkeypatch, "fill_between")
    paths = figures.profiles(built, tmp_path)
    assert {p.name for p in paths} == {"profiles.png", "profiles.svg"}
    ((ax, (x, y), k),) = [c for c in lines if c[2].get("label") == "CPEP"]
    assert list(y) == list(profile.loc[("cpep", "lp_id"), "fraction"])
    assert len(bands) == 2 and ax.get_title() == "LP in-dist"
    few = report.build(fixture_suite, [r for r in recs if r["seed"] < 3]).profiles
    assert few["fraction"].notna().all() and few["low"].isna().all() and few["high"].isna().all()
