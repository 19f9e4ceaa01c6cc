"""The coverage simulation on a reduced grid: it shows the failure of the percentile bootstrap with few seeds and
of the seeds-only t with the same users on every seed, the success of the report's default, the inflated type I
error of sign flips that treat a seed's users as independent; and the command that writes docs/statistics.md's
tables."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from bench.report import coverage, stats

REPLICATIONS = 300  # a coverage of 0.95 is then measured within +-0.025 (two standard errors)


def rate(rows: list[dict], statistic: str, method: str) -> float:
    (found,) = [r["rate"] for r in rows if (r["statistic"], r["method"]) == (statistic, method)]
    return found


def test_with_three_seeds_and_training_noise_the_percentile_bootstrap_undercovers_and_t_does_not():
    cell = coverage.Cell("nested", 3, seed_sd=0.05, user_sd=0.02)
    rows = coverage.measure(cell, REPLICATIONS, 500, statistics=("mean", "difference"), methods=("t", "bootstrap"),
                            tests=False)
    for statistic in ("mean", "difference"):
        assert rate(rows, statistic, "bootstrap") < 0.88
        assert rate(rows, statistic, "t") >= 0.91


def test_with_the_same_users_on_every_seed_t_needs_the_users_term():
    cell = coverage.Cell("crossed", 3, seed_sd=0.015, user_sd=0.10)
    rows = coverage.measure(cell, REPLICATIONS, 100, statistics=("mean",), methods=("t", coverage.SEEDS_ONLY),
                            tests=False)
    assert rate(rows, "mean", coverage.SEEDS_ONLY) < 0.8
    assert rate(rows, "mean", "t") >= 0.91


def test_sign_flips_must_flip_a_seeds_users_together():
    cell = coverage.Cell("nested", 5, seed_sd=0.03, user_sd=0.02)
    rows = coverage.measure(cell, 200, 100, statistics=("difference",), methods=("t",))
    rejects = {r["method"]: r["rate"] for r in rows if r["measure"] != "coverage"}
    assert rejects["sign flip of (seed, user) pairs"] > 0.2
    assert rejects["sign flip of seeds"] <= 0.08 and rejects["t test"] <= 0.08


def test_the_targets_are_the_expectations_of_the_statistics_over_many_draws():
    cell = coverage.Cell("nested", 2, seed_sd=0.03, user_sd=0.05)
    rng = np.random.default_rng(0)
    values = np.concatenate([cell.draw(rng) for _ in range(2000)])  # 4,000 seeds of 16 users
    for name, target in cell.targets().items():
        assert coverage.STATISTICS[name](values).mean() == pytest.approx(target, abs=0.005), name


def test_an_interval_serves_from_the_fewest_seeds_whose_worst_cell_reaches_the_floor():
    rates = {("t", "mean"): {3: 0.94, 10: 0.95}, ("t", "P(A > B)"): {3: 0.85, 10: 0.93},
             ("bootstrap", "mean"): {3: 0.8, 10: 0.91}, ("bootstrap", "difference"): {3: 0.8, 10: 0.89}}
    rows = [{"design": "nested", "seeds": s, "statistic": name, "method": m, "measure": "coverage", "rate": r}
            for (m, name), by_seeds in rates.items() for s, r in by_seeds.items()]
    found = coverage.served_from(pd.DataFrame(rows))
    assert found == {("t", "nested", "estimates"): 3, ("t", "nested", "fractions"): 10,
                     ("bootstrap", "nested", "estimates"): None}


def test_the_report_prints_each_interval_only_from_the_seeds_measured_for_it():
    three = [[[0.5]], [[0.6]], [[0.7]]]
    assert stats.estimate(three, stats.mean_of, "t").has_ci
    assert not stats.estimate(three, stats.mean_of, "bootstrap").has_ci
    assert not stats.estimate([np.c_[[0.5, 0.6], [0.4, 0.4]]] * 3, stats.improvement_of, "t").has_ci  # a fraction
    assert stats.least_seeds("t", crossed=False, statistic=stats.improvement_of) == stats.FRACTION_SEEDS
    assert stats.least_seeds("bca", crossed=True) is None


def test_the_command_writes_its_tables_and_replaces_the_docs_block(tmp_path, monkeypatch, capsys):
    from bench import cli
    docs = tmp_path / "statistics.md"
    docs.write_text(f"# Statistics\n\nbefore\n{coverage.BEGIN}\nold table\n{coverage.END}\nafter\n")
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "coverage", "--replications", "10", "--resamples", "100",
                                      "--seeds", "2", "--seed-sd", "0.03", "--user-sd", "0.02,0.1", "--out",
                                      str(tmp_path / "out"), "--docs", str(docs)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code in (0, None)
    text = docs.read_text()
    assert "old table" not in text and text.startswith("# Statistics\n\nbefore\n") and text.endswith("\nafter\n")
    assert "Lowest coverage" in text and "cpep-bench coverage --replications 10" in text
    frame = pd.read_csv(tmp_path / "out" / "coverage.csv")
    assert set(frame["design"]) == set(coverage.DESIGNS) and set(frame["seeds"]) == {2}
    assert set(frame["user_sd"]) == {0.02, 0.1} and set(frame["seed_sd"]) == {0.03}
    assert len(frame[frame["measure"] == "coverage"]) == 2 * (5 * 3 + 5 * 4)  # cells x statistics x methods


def test_one_interval_alone_is_measured_without_the_others_or_the_tests(tmp_path, monkeypatch):
    from bench import cli
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "coverage", "--intervals", "bca", "--replications", "10",
                                      "--resamples", "100", "--seeds", "2", "--seed-sd", "0.03", "--user-sd", "0.02",
                                      "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code in (0, None)
    frame = pd.read_csv(tmp_path / "coverage.csv")
    assert set(frame["method"]) == {"bca"} and set(frame["measure"]) == {"coverage"}
    table = (tmp_path / "coverage.md").read_text()
    assert "--intervals bca" in table and "| mean | bca |" in table and "| mean | t |" not in table
    assert "rejection rate" not in table


@pytest.mark.parametrize("args, message", [(["--seeds", "1"], "2 seeds or more"), (["--seeds", "x"], "comma"),
                                           (["--user-sd", "-1"], "0 or more"),
                                           (["--intervals", "bca,wald"], "wald is not an interval"),
                                           (["--intervals", "bca", "--docs", "docs/statistics.md"], "--docs")])
def test_bad_seeds_are_one_line(args, message, monkeypatch, capsys):
    from bench import cli
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "coverage", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
