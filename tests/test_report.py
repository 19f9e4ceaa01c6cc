"""The report: CI arithmetic against hand-computed values, tables and figures from fixture records, the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import plugins, suites
from bench.report import build as report
from bench.report import latex, stats, tables, write
from bench.report.frames import METRICS, Report, metric_order
from bench.run.planner import run_code
from bench.run.store import Store
from cpep import config
from cpep.errors import UserError

T_975_DF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2), from a table
T_975_DF1 = 12.706204736174705  # scipy.stats.t.ppf(0.975, 1)

SUITE_TOML = """
description = "fixture suite"
seeds = [0, 1, 2, 3]

[[variants]]
name = "cpep"
method = "cpep"
label = "CPEP"

[[variants]]
name = "emg_mae"
method = "emg_mae"
label = "EMG-MAE"

[[variants]]
name = "frozen_emg"
method = "cpep"
label = "ablation: EMG encoder frozen"
set = { "align.train_emg" = false }

[[variants]]
name = "avgpool"
method = "cpep"
label = "ablation: AvgPool instead of [CLS]"
set = { "embedding.pooling" = "mean" }

[[variants]]
name = "patch50"
method = "cpep"
label = "EMG patch 50 samples"
group = "patch_length"
set = { "emg.patch" = 50 }

[[variants]]
name = "patch400"
method = "cpep"
label = "EMG patch 400 samples"
group = "patch_length"
set = { "emg.patch" = 400 }
"""

# (lp_id, lp_unseen, zs_id, zs_unseen) per seed; emg_mae has no zero-shot metrics
RESULTS = {
    "cpep": {0: (0.70, 0.50, 0.60, 0.40), 1: (0.74, 0.52, 0.62, 0.44), 2: (0.78, 0.54, 0.64, 0.48)},
    "frozen_emg": {0: (0.40, 0.30, 0.30, 0.20), 1: (0.42, 0.33, 0.31, 0.22), 2: (0.50, 0.35, 0.36, 0.30)},
    "emg_mae": {0: (0.50, 0.30, None, None), 1: (0.60, 0.32, None, None)},
    "avgpool": {0: (0.72, 0.51, 0.61, 0.41)},
    "patch50": {0: (0.80, 0.56, 0.66, 0.50), 1: (0.82, 0.58, 0.68, 0.52), 2: (0.84, 0.60, 0.70, 0.54)},
    "patch400": {0: (0.60, 0.40, 0.50, 0.30), 1: (0.62, 0.42, 0.52, 0.32), 2: (0.64, 0.44, 0.54, 0.34)},
}
NO_ZS = "no pose-aligned EMG embedding"


def history(kind: str, epochs: int = 3) -> list[dict]:
    return [{"epoch": e, "loss": 2.0 / e, "lr": 1e-3, "seconds": 0.1}
            | ({"temperature": 0.02 + 0.001 * e} if kind == "align" else {}) for e in range(1, epochs + 1)]


ENVIRONMENT = {"device": "cpu", "precision": "float32", "threads": 1, "cpu_capability": "AVX2", "torch": "2.14.1"}


def make_record(suite: suites.Suite, variant: str, seed: int, metrics=None, status="done", error=None,
                dataset="emg2pose", **config_overrides) -> dict:
    """A record as `cpep-bench run` writes it, by the code here (its code digest is the current one). Records on
    emg2pose read it with the paper's vocabulary, so the paper's numbers apply to them."""
    v = suite.variant(variant)
    if dataset == "emg2pose":
        config_overrides = {"data.vocab": "emg2pose-v1"} | config_overrides
    cfg = plugins.resolve(suite.overrides, v.overrides, config_overrides)
    kinds = ("pose_mae", "emg_mae", "align") if v.method == "cpep" else (v.method,)
    stages = [{"kind": k, "key": f"{k}-{'shared' if k == 'pose_mae' else variant}-{seed}", "status": "done",
               "seconds": 1.0, "history": history(k), "environment": ENVIRONMENT} for k in kinds]
    names = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")
    return {
        "schema": 3, "suite": suite.name, "variant": variant, "label": v.label, "method": v.method,
        "group": v.group, "dataset": dataset, "seed": seed, "data_key": config.digest(dataset)[:8], "data_root": "",
        "code": run_code(v.method, cfg), "run_key": f"{variant}-{seed}", "status": status,
        "error": error, "metrics": dict(zip(names, metrics)) if status == "done" else None,
        "not_applicable": {"zs_id": NO_ZS, "zs_unseen": NO_ZS} if v.method == "emg_mae" else {},
        "config": cfg, "stages": stages, "seconds": 3.0, "provenance": {}, "updated": "2026-01-01T00:00:00+00:00",
    }


def write_records(store: Store, records: list[dict]) -> None:
    """Each record where `cpep-bench run` files it."""
    for r in records:
        path = store.record_path(r["suite"], f"{r['dataset']}-{r['data_key']}", r["variant"], r["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))


@pytest.fixture
def fixture_suite(tmp_path) -> suites.Suite:
    path = tmp_path / "fixture.toml"
    path.write_text(SUITE_TOML)
    return suites.load(str(path))


def fixture_records(suite: suites.Suite) -> list[dict]:
    """Done runs, a failed run, a running one, missing seeds, a changed setting."""
    records = [make_record(suite, v, s, m) for v, by_seed in RESULTS.items() for s, m in by_seed.items()]
    return records + [
        make_record(suite, "emg_mae", 2, status="failed", error="emg_mae: RuntimeError: out of memory"),
        make_record(suite, "avgpool", 1, status="running") | {"worker": {"host": "node7", "pid": 42}},
        make_record(suite, "cpep", 3, (0.70, 0.50, 0.60, 0.40), **{"mae.epochs": 7}),
    ]


@pytest.fixture
def results(tmp_path, fixture_suite) -> Path:
    """A runs directory holding the fixture records."""
    store = Store(tmp_path / "results")
    write_records(store, fixture_records(fixture_suite))
    return store.root


def build(results: Path, suite: suites.Suite, method="t") -> Report:
    records = Store(results).records(suite.name)
    return report.build(suite, records, method, 0.95)


# CI arithmetic

def test_t_interval_matches_the_hand_computed_one():
    ci = stats.interval([0.70, 0.74, 0.78], "t", 0.95)
    half = T_975_DF2 * 0.04 / math.sqrt(3)  # s = 0.04
    assert ci.n == 3 and ci.mean == pytest.approx(0.74)
    assert ci.low == pytest.approx(0.74 - half, abs=1e-9) and ci.high == pytest.approx(0.74 + half, abs=1e-9)
    assert ci.excludes_zero


def test_paired_differences_use_only_the_shared_seeds():
    import pandas as pd

    from bench.report import scores
    values = pd.DataFrame([("a", s, "m", x) for s, x in {0: 0.5, 1: 0.6, 2: 0.7}.items()]
                          + [("b", s, "m", x) for s, x in {1: 0.5, 2: 0.55, 3: 0.9}.items()],
                          columns=["variant", "seed", "metric", "value"])
    found = scores.Scores(values, scores.users_frame([]))
    ci, _, seeds = scores.compare(found, (("a", "m"), ("b", "m")), stats.difference_of, "t", 0.95, 0.0, "interval")
    assert seeds == [1, 2]  # differences 0.10 and 0.15: mean 0.125, s / sqrt(2) = 0.025
    assert ci.mean == pytest.approx(0.125)
    assert (ci.low, ci.high) == pytest.approx((0.125 - T_975_DF1 * 0.025, 0.125 + T_975_DF1 * 0.025))
    assert not ci.excludes_zero


@pytest.mark.parametrize("method", stats.CI_METHODS)
def test_degenerate_samples_give_no_traceback(method):
    assert stats.interval([], method).n == 0
    one = stats.interval([0.6], method)
    assert one.mean == 0.6 and not one.has_ci and not one.excludes_zero
    flat = stats.interval([0.5] * stats.least_seeds(method, crossed=False), method)
    assert (flat.low, flat.mean, flat.high) == (0.5, 0.5, 0.5)
    assert stats.interval([0.4, None, float("nan"), 0.6], method).n == 2


def test_bootstrap_interval_is_deterministic_and_inside_the_data():
    values = [0.61, 0.70, 0.66, 0.74, 0.69, 0.72, 0.65, 0.68, 0.71, 0.63] * 2
    first, second = stats.interval(values, "bootstrap"), stats.interval(values, "bootstrap")
    assert first == second
    assert min(values) <= first.low < first.mean < first.high <= max(values)
    with pytest.raises(ValueError):
        stats.interval(values, "jackknife")


def test_rank_agreement_counts_pairs_and_kendall_tau():
    tau, pairs = stats.rank_agreement({"a": 0.9, "b": 0.5, "c": 0.7}, {"a": 0.8, "b": 0.6, "c": 0.4})
    assert [p.verdict for p in pairs] == ["agrees", "agrees", "disagrees"]  # a-b, a-c, b-c
    assert tau == pytest.approx(1 / 3)  # (2 concordant - 1 discordant) / 3 pairs
    tau, pairs = stats.rank_agreement({"a": 0.5, "b": 0.5}, {"a": 0.6, "b": 0.6})
    assert math.isnan(tau) and pairs[0].verdict == "tied in the paper"


# the paper's numbers

def test_paper_numbers_are_the_checked_in_file_and_use_our_variant_names():
    from bench.report import reference
    repo = Path(__file__).resolve().parents[1]
    packaged = Path(str(reference.__file__)).parent / "published" / "emg2pose.csv"
    assert packaged.read_bytes() == (repo / "results" / "emg2pose.csv").read_bytes()
    df = reference.load()
    assert set(df["variant"]) <= set(suites.load("full").names)
    assert set(df["metric"]) <= {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}
    main = reference.primary(df)
    assert main.loc[("cpep", "lp_id"), "value"] == 0.782 and not main.loc[("cpep", "lp_id"), "approximate"]
    assert main.loc[("emg_mae", "lp_id"), "approximate"]
    assert df.set_index(["paper", "variant", "metric"]).loc[("embridge", "emg2pose", "lp_id"), "value"] == 0.734


# tables

def test_summary_from_fixture_records(results, fixture_suite):
    rep = build(results, fixture_suite)
    assert rep.seeds == [0, 1, 2, 3] and rep.done["emg_mae"] == [0, 1]
    s = rep.summary.set_index(["variant", "metric"])
    cpep = s.loc[("cpep", "lp_id")]  # seeds 0-3: 0.70, 0.74, 0.78, 0.70
    assert cpep["n"] == 4 and cpep["mean"] == pytest.approx(0.73) and cpep["paper"] == 0.782
    assert s.loc[("emg_mae", "zs_id"), "not_applicable"] == NO_ZS and s.loc[("emg_mae", "zs_id"), "n"] == 0
    assert s.loc[("avgpool", "lp_id"), "n"] == 1 and math.isnan(s.loc[("avgpool", "lp_id"), "ci_low"])
    d = rep.differences.set_index(["variant", "metric"]).loc[("frozen_emg", "lp_id")]
    assert d["seeds"] == "0 1 2" and d["mean"] == pytest.approx(-0.30) and d["excludes_zero"]


def test_markdown_lists_failed_missing_and_not_applicable(results, fixture_suite):
    md = tables.markdown(build(results, fixture_suite))
    row = next(line for line in md.splitlines() if line.startswith("| EMG-MAE |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "**2 of 4**"  # fewer seeds than asked, marked
    assert cells[2] == "0.550 ± 0.635" and cells[4] == "~0.55 (0.347)"  # 0.05 * 12.706
    assert cells[3] == "0.550 ± 0.635"  # the IQM of 0.50 and 0.60 (no per-user scores: over the seeds)
    assert cells[8] == cells[9] == cells[11] == "-¹"
    assert "-¹ not applicable: no pose-aligned EMG embedding" in md
    assert "| emg_mae | 2 | failed | emg_mae: RuntimeError: out of memory |" in md
    assert "| avgpool | 1 | running | started on node7 (pid 42)" in md
    assert "| patch50 | 3 | missing | no record |" in md
    assert "| avgpool | 2 3 | missing | no record |" in md
    assert "0.720 (n=1)" in md
    assert "No published reference" not in md and "Student t" in md
    assert "configuration differs: mae.epochs = 40 in 15 runs" in md
    assert "Kendall tau" in md


def test_bootstrap_tables_need_the_seeds_the_bootstrap_serves(results, fixture_suite):
    with pytest.raises(UserError, match="--ci bootstrap needs 20 seeds or more"):
        build(results, fixture_suite, method="bootstrap")


def test_show_writes_every_file_and_prints(results, fixture_suite, tmp_path):
    from rich.console import Console
    console = Console(record=True, width=160)
    out = report.show(fixture_suite, Store(results), console, out=tmp_path / "rep", figures=False, full=True)
    names = {p.name for p in out.iterdir()}
    assert {"table.md", "table.tex", "iqm.tex", "table.csv", "differences.csv", "differences.tex", "improvement.tex",
            "claims.tex", "ordering.csv", "incomplete.csv", "report.html"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert len(rows) == 6 * 4 and rows[0]["suite"] == "fixture" and rows[0]["ci_method"] == "t"
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"$\sim$0.55" in tex
    printed = console.export_text()
    assert "0.730" in printed and "paper 0.782" in printed and "out of memory" in printed
    assert "2 of 4" in printed and "No published reference" not in printed


def test_terminal_tables_stay_whole_at_80_columns(results, fixture_suite):
    from rich.console import Console
    console = Console(record=True, width=80)
    tables.print_report(build(results, fixture_suite), console)
    printed = console.export_text()
    assert "…" not in printed  # rich truncates what does not fit
    for first, count in (("method", "n"), ("method", "pairs")):
        header = next(line for line in printed.splitlines() if line.split()[:2] == [first, count])
        assert header.split()[2:] == ["LP", "in-dist", "LP", "unseen", "ZS", "in-dist", "ZS", "unseen"]
    assert "2 of 4" in printed and "paper 0.481" in printed
    cpep = printed.split("CPEP", 1)[1].splitlines()
    assert cpep[0].split()[1] == "0.730" and cpep[1].split()[0] == "±"  # the mean above its interval


def test_more_metrics_than_fit_are_printed_in_tables_of_four(tmp_path, fixture_suite):
    """Twelve metrics (the four of the paper and eight few-shot probes) at 80 columns: three tables, none cut."""
    from rich.console import Console
    extra = [f"lp_k{k:02d}_{kind}" for k in (1, 5, 10, 20) for kind in ("id", "unseen")]
    store = Store(tmp_path / "results")
    for seed in (0, 1):
        for variant in ("cpep", "patch50"):
            r = make_record(fixture_suite, variant, seed, (0.70, 0.50, 0.60, 0.40))
            r["metrics"] |= {m: 0.5 + 0.01 * i + 0.02 * seed for i, m in enumerate(extra)}
            path = store.record_path(r["suite"], r["dataset"], r["variant"], r["seed"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
    rep = build(store.root, fixture_suite)
    assert len(rep.metrics) == 12
    console = Console(record=True, width=80)
    tables.print_report(rep, console)
    printed = console.export_text()
    assert "…" not in printed and max(map(len, printed.splitlines())) <= 80
    for part in ("(1/3)", "(2/3)", "(3/3)"):  # the estimates', the differences', the IQMs', P(variant > CPEP)
        assert sum(line.rstrip().endswith(part) for line in printed.splitlines()) == 4
    assert sum(line.split()[:1] == ["method"] for line in printed.splitlines()) == 12
    for key in ("lp_k01", "lp_k05", "lp_k10", "lp_k20"):  # in-dist and unseen, estimates and differences
        assert printed.count(key) == 8, key
    assert not any(line.rstrip().endswith(("no share", "unsee")) for line in printed.splitlines())


def test_no_records_and_bad_options_are_user_errors(tmp_path, fixture_suite, results):
    from rich.console import Console
    with pytest.raises(UserError, match="no results for suite 'fixture'"):
        report.show(fixture_suite, Store(tmp_path / "empty"), Console())
    with pytest.raises(UserError, match="no records on the data asked for .it has: emg2pose-"):
        report.show(fixture_suite, Store(results), Console(), data="ninapro_db2")
    with pytest.raises(UserError, match="--level"):
        report.show(fixture_suite, Store(results), Console(), level=95)
    with pytest.raises(UserError, match="--format"):
        write.parse_formats("md,pdf")


def test_each_data_identity_is_reported_on_its_own_and_never_pooled(results, fixture_suite, tmp_path):
    from rich.console import Console
    store = Store(results)
    other = [make_record(fixture_suite, "cpep", seed, metrics, dataset="synthetic")
             for seed, metrics in ((0, (0.80, 0.50, 0.70, 0.45)), (1, (0.76, 0.56, 0.74, 0.47)))]
    write_records(store, other)
    with pytest.raises(UserError, match="records on 2 data identities, which a table never pools: "
                                        "emg2pose-.*; synthetic-.*choose one with --data-id"):
        report.show(fixture_suite, store, Console())
    with pytest.raises(UserError, match="several data identities never share a report"):
        report.build(fixture_suite, store.records("fixture"))
    out = report.show(fixture_suite, store, Console(), out=tmp_path / "syn", data_id=other[0]["data_key"],
                      figures=False)
    md = (out / "table.md").read_text()
    assert md.startswith(f"# fixture: balanced accuracy on synthetic-{other[0]['data_key']} (generated; 2 runs)")
    assert "No published reference for synthetic data" in md and "| paper" not in md
    assert "| frozen_emg | 0 1 | missing | no record |" in md
    assert "Ordering against the paper" not in md and "inside our interval" not in md
    rep = report.build(fixture_suite, other)
    assert rep.seeds == [0, 1] and len(rep.values) == 8
    # the paper's numbers stand beside the records on emg2pose, read with its vocabulary
    paper = report.build(fixture_suite, fixture_records(fixture_suite))
    assert paper.published and "the paper's number lies inside our interval" in tables.markdown(paper)


def md_row(md: str, label: str) -> list[str]:
    """The cells of the first Markdown table row whose first cell is `label`."""
    rows = ([c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines() if line.startswith("|"))
    return next(cells for cells in rows if cells[0] == label)


def test_metric_order_puts_the_known_metrics_first_and_only_those_recorded():
    records = [{"metrics": {"zs_id": 0.5, "knn_id": 0.4, "lp_id": None}}, {"metrics": None},
               {"metrics": {"a_metric": 0.1}, "not_applicable": {"zs_unseen": "why"}}]
    assert metric_order(records) == ["lp_id", "zs_id", "zs_unseen", "a_metric", "knn_id"]
    assert metric_order([{"metrics": None}]) == list(METRICS)  # nothing recorded yet: the known ones


def test_a_new_metric_is_a_column_in_every_table_and_figure(fixture_suite, tmp_path):
    from rich.console import Console

    from bench.report import figures
    records = fixture_records(fixture_suite)
    for r in records:
        if r["status"] == "done":
            r["metrics"]["knn_id"] = 0.5 + 0.1 * r["seed"]
    next(r for r in records if (r["variant"], r["seed"]) == ("cpep", 0))["metrics"]["a_metric"] = 0.25
    rep = report.build(fixture_suite, records)
    assert rep.metrics == [*METRICS, "a_metric", "knn_id"]

    md = tables.markdown(rep)
    assert md_row(md, "method")[-6:] == ["a_metric", "IQM", "paper", "knn in-dist", "IQM", "paper"]
    cpep = md_row(md, "CPEP")
    assert cpep[-6] == cpep[-5] == "0.250 (n=1)"
    assert cpep[-3] == "0.650 ± 0.205"  # 0.5 0.6 0.7 0.8: s = 0.1291, t(3) = 3.182, 3.182 * 0.1291 / 2
    assert md_row(md, "EMG-MAE")[-3] == "0.550 ± 0.635"
    differences = md.split("## Paired differences")[1]
    assert md_row(differences, "ablation: EMG encoder frozen")[-1] == "+0.000 ± 0.000"  # same knn_id per seed

    write.write_tables(rep, tmp_path, ("csv", "tex"))
    rows = [r for r in csv.DictReader((tmp_path / "table.csv").open()) if r["metric"] == "knn_id"]
    assert [r["variant"] for r in rows] == rep.variants
    assert float(next(r["mean"] for r in rows if r["variant"] == "cpep")) == pytest.approx(0.65)
    assert {r["metric"] for r in csv.DictReader((tmp_path / "differences.csv").open())} == {*METRICS, "a_metric",
                                                                                           "knn_id"}
    tex = (tmp_path / "table.tex").read_text()
    assert r"\multicolumn{2}{c}{knn in-dist}" in tex and r"\cmidrule(lr){13-14}" in tex
    differences_tex = (tmp_path / "differences.tex").read_text()
    assert r"knn in-dist \\" in differences_tex
    # every mark in a caption is explained there: EMG-MAE has no zero-shot metric (-¹)
    assert r"-\textsuperscript{1}" in differences_tex and r"-\textsuperscript{1} not applicable:" in differences_tex

    console = Console(record=True, width=300)
    tables.print_report(rep, console)
    printed = console.export_text()
    assert "knn in-dist" in printed and "a_metric" in printed and "0.650" in printed and "± 0.205" in printed

    written = figures.write_all(rep, tmp_path / "fig")
    assert {p.stem for p in written} == {"bars", "patch_length", "training_curves"}


def test_stale_runs_are_marked_in_every_table_and_named_in_a_note(fixture_suite, tmp_path):
    from rich.console import Console
    records = fixture_records(fixture_suite)
    run = {(r["variant"], r["seed"], r["status"]): r for r in records}
    run["cpep", 1, "done"]["stale"] = True
    run["patch50", 2, "done"]["stages"][1]["stale"] = True  # a stale stage in a record not marked itself
    run["avgpool", 1, "running"]["stale"] = True  # no result yet: nothing in the tables to mark
    rep = report.build(fixture_suite, records, reuse_stale=True)
    assert rep.stale == {"cpep": [1], "patch50": [2]}
    s = rep.summary.set_index(["variant", "metric"])
    assert s.loc[("cpep", "lp_id"), "n"] == 4 and s.loc[("cpep", "lp_id"), "mean"] == pytest.approx(0.73)

    md = tables.markdown(rep)
    main, differences = md.split("## Paired differences")[0], md.split("## Paired differences")[1].split("##")[0]
    assert md_row(main, "CPEP†")[1] == "4" and md_row(main, "EMG patch 50 samples†")
    assert md_row(main, "ablation: AvgPool instead of [CLS]") and md_row(main, "EMG patch 400 samples")
    note = "Stale runs: cpep seed 1; patch50 seed 2."
    assert note in main and "computed by older code" in main and "rerun without --reuse-stale" in main
    # a difference is stale where CPEP's stale seed 1 is one of the shared seeds: avgpool has seed 0 only
    assert md_row(differences, "ablation: EMG encoder frozen†") and md_row(differences, "EMG patch 50 samples†")
    assert md_row(differences, "ablation: AvgPool instead of [CLS]") and note in differences

    tidy = write.tidy(rep)
    assert set(tidy.loc[tidy["stale"], "variant"]) == {"cpep", "patch50"}
    d = rep.differences.groupby("variant")["stale"].all()
    assert d["frozen_emg"] and not d["avgpool"]
    assert set(rep.ordering.loc[~rep.ordering["stale"], ["first", "second"]].stack()) <= {
        "emg_mae", "frozen_emg", "avgpool", "patch400"}
    tex = latex.table(rep)
    assert r"CPEP\dag{} & 4 &" in tex and "-{}-reuse-stale" in tex
    console = Console(record=True, width=250)
    tables.print_report(rep, console)
    printed = console.export_text()
    assert "CPEP†" in printed and note in printed

    fresh = report.build(fixture_suite, fixture_records(fixture_suite))
    fresh_md = tables.markdown(fresh) + latex.table(fresh)
    assert md_row(fresh_md, "CPEP")[1] == "4"
    assert "†" not in fresh_md and "dag" not in fresh_md and "Stale runs" not in fresh_md
    assert not write.tidy(fresh)["stale"].any() and not fresh.differences["stale"].any()


# figures

def test_figures_are_written_and_not_empty(results, fixture_suite, tmp_path):
    from bench.report import figures
    written = figures.write_all(build(results, fixture_suite), tmp_path / "fig")
    assert {p.name for p in written} == {f"{stem}.{ext}" for stem in ("bars", "patch_length", "training_curves")
                                         for ext in ("png", "svg")}
    for p in written:
        data = p.read_bytes()
        assert len(data) > 10_000
        assert data.startswith(b"\x89PNG\r\n\x1a\n") if p.suffix == ".png" else b"<svg" in data[:1000]


# the command line

def test_results_of_older_code_are_left_out_and_listed_unless_asked_for(fixture_suite, tmp_path):
    records = fixture_records(fixture_suite)
    run = {(r["variant"], r["seed"], r["status"]): r for r in records}
    run["cpep", 1, "done"]["code"] = "0123456789abcdef"  # computed by other code than this checkout's
    run["frozen_emg", 0, "done"]["stale"] = True  # reused stages of older code
    fresh = report.build(fixture_suite, records)
    assert fresh.stale == {}
    s = fresh.summary.set_index(["variant", "metric"])
    assert s.loc[("cpep", "lp_id"), "n"] == 3 and s.loc[("frozen_emg", "lp_id"), "n"] == 2
    left = fresh.incomplete.set_index(["variant", "status"])
    assert left.loc[("cpep", "stale"), "seeds"] == "1" and left.loc[("frozen_emg", "stale"), "seeds"] == "0"
    assert "computed by older code (fingerprint 01234567, now" in left.loc[("cpep", "stale"), "reason"]
    assert "reused stages of older code" in left.loc[("frozen_emg", "stale"), "reason"]
    md = tables.markdown(fresh)
    assert "| cpep | 1 | stale | computed by older code (fingerprint 01234567" in md and "report --reuse-stale" in md
    marked = report.build(fixture_suite, records, reuse_stale=True)
    assert marked.stale == {"cpep": [1], "frozen_emg": [0]}
    assert marked.summary.set_index(["variant", "metric"]).loc[("cpep", "lp_id"), "n"] == 4


def test_a_table_names_the_environments_its_seeds_ran_in(fixture_suite):
    records = fixture_records(fixture_suite)
    for r in records:
        if r["variant"] == "cpep" and r["seed"] == 2:
            r["stages"] = [s | {"environment": s["environment"] | {"threads": 2}} for s in r["stages"]]
    notes = report.build(fixture_suite, records).notes
    (note,) = [n for n in notes if "environments" in n]
    assert "2 environments" in note and "cpu, float32, 1 threads, AVX2, torch 2.14.1 (15 runs)" in note
    assert "cpu, float32, 2 threads, AVX2, torch 2.14.1 (1 run)" in note
    assert not [n for n in report.build(fixture_suite, fixture_records(fixture_suite)).notes if "environments" in n]


def test_cli_report_writes_tables_and_figures(results, fixture_suite, tmp_path, monkeypatch, capsys):
    from bench import cli
    suite_file = tmp_path / "fixture.toml"
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "report", "--suite", str(suite_file), "--runs-dir",
                                      str(results), "--format", "md,csv", "--ci", "bootstrap"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1  # 4 seeds: too few
    monkeypatch.setattr(sys, "argv", sys.argv[:-2])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 0
    (out,) = (results / "report" / "fixture").glob("emg2pose-*")
    assert {"table.md", "table.csv", "bars.png", "training_curves.svg"} <= {p.name for p in out.iterdir()}
    assert not (out / "table.tex").exists()
    assert "Student t interval over seeds" in capsys.readouterr().out


def test_cli_report_on_an_empty_runs_dir_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from bench import cli
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "report", "--suite", "smoke", "--runs-dir",
                                      str(tmp_path / "none")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    captured = capsys.readouterr()
    assert exit_.value.code == 2
    assert captured.err.strip().count("\n") == 0 and "no results for suite 'smoke'" in captured.err


def test_importing_the_report_does_not_load_torch():
    repo = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, bench.report.build; print(bench.report.build.__file__); "
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == repo / "bench" / "report" / "build.py"


def test_chance_is_drawn_and_explained_from_the_records_vocabulary(results, fixture_suite, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from bench.report import figures
    rep = build(results, fixture_suite)
    assert rep.chance == {m: 0.25 for m in METRICS}  # synthetic-v1: 4 + 4 classes
    note = "chance (balanced accuracy of guessing): 0.250 in-distribution (4 classes), 0.250 unseen (4 classes)."
    assert note in tables.markdown(rep) and latex.tex(note) in latex.table(rep)
    drawn = []
    real = plt.Axes.axvline
    monkeypatch.setattr(plt.Axes, "axvline", lambda ax, x, **k: drawn.append((x, k.get("label"))) or real(ax, x, **k))
    figures.bars(rep, tmp_path)
    assert drawn.count((0.25, "chance")) == len(METRICS)
    records = Store(results).records(fixture_suite.name)
    records[0]["config"]["data"]["vocab"] = str(tmp_path / "gone.toml")
    assert report.build(fixture_suite, records).chance == {}  # the records disagree
    for r in records:
        r["config"]["data"]["vocab"] = str(tmp_path / "gone.toml")
    assert report.build(fixture_suite, records).chance == {}  # their vocabulary is not here


# the floor and ceiling rows; ties

BOUNDS_SUITE = SUITE_TOML.replace('seeds = [0, 1, 2, 3]', 'seeds = [0, 1, 2]\ninclude = ["bounds"]')
BOUNDS = {"emg_log_power": ((0.45, 0.40), "floor: EMG log-power + LR"),
          "pose_features": ((0.95, 0.90), "ceiling: pose features + LR")}


def bounds_records(suite: suites.Suite) -> list[dict]:
    """Every variant on seeds 0-2; the floor and ceiling have LP only, and EMG-MAE ties the frozen ablation."""
    records = []
    for variant in suite.names:
        for seed in range(3):
            if variant in BOUNDS:
                lp = BOUNDS[variant][0]
                metrics = (lp[0] + 0.01 * seed, lp[1] + 0.01 * seed, None, None)
            else:
                metrics = RESULTS.get(variant, RESULTS["cpep"]).get(seed, RESULTS["cpep"][seed])
            if variant == "emg_mae":
                metrics = RESULTS["frozen_emg"][seed][:2] + (None, None)
            rec = make_record(suite, variant, seed, metrics)
            if variant in BOUNDS:
                why = plugins.get("method", variant).no_zero_shot
                rec |= {"stages": [], "not_applicable": {"zs_id": why, "zs_unseen": why}}
            records.append(rec)
    return records


@pytest.fixture
def bounds_report(tmp_path) -> Report:
    path = tmp_path / "with_bounds.toml"
    path.write_text(BOUNDS_SUITE)
    suite = suites.load(str(path))
    assert suite.names[:2] == list(BOUNDS)  # included first...
    return report.build(suite, bounds_records(suite))


def test_floor_and_ceiling_are_the_last_rows_of_every_table(bounds_report, tmp_path):
    from rich.console import Console
    rep = bounds_report
    assert rep.variants[-2:] == list(BOUNDS)  # ...shown last
    md = tables.markdown(rep)
    rows = [line for line in md.split("## Paired differences")[0].splitlines() if line.startswith("| ")]
    assert [md_row(row, row.split("|")[1].strip())[0] for row in rows[-2:]] == [label for _, label in BOUNDS.values()]
    floor = md_row(md, "floor: EMG log-power + LR")
    assert floor[1:5] == ["3", "0.460 ± 0.025", "0.460 ± 0.025", ""]  # no paper number
    assert floor[8].startswith("-")  # no zero-shot
    ceiling = md_row(md, "ceiling: pose features + LR")
    assert ceiling[2] == "0.960 ± 0.025" and ceiling[8].startswith("-")
    assert "pose input" in md and tables.BOUNDS_NOTE in md
    differences = md.split("## Paired differences")[1].split("## Ordering")[0]
    assert md_row(differences, "floor: EMG log-power + LR")[2] == "-0.280 ± 0.075 *"  # 0.45-0.70, 0.46-0.74, 0.47-0.78

    write.write_tables(rep, tmp_path, ("csv", "tex"))
    table = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert {r["variant"] for r in table if r["group"] == "bounds"} == set(BOUNDS)
    assert [r["variant"] for r in table][-8:] == [v for v in BOUNDS for _ in range(4)]
    for name in ("table.tex", "differences.tex"):
        lines = (tmp_path / name).read_text().splitlines()
        floor_line = next(i for i, line in enumerate(lines) if line.startswith("floor: EMG log-power"))
        assert lines[floor_line - 1] == r"\midrule" and lines[floor_line + 1].startswith("ceiling: pose features")

    console = Console(record=True, width=80)
    tables.print_report(rep, console)
    printed = console.export_text()
    assert "…" not in printed
    main = printed.split("paired differences")[0].splitlines()
    cpep, floor_at = (next(i for i, line in enumerate(main) if line.strip().startswith(start))
                      for start in ("CPEP", "floor: EMG"))
    assert cpep < floor_at and main[floor_at - 1].strip() == ""  # a blank line sets the floor and ceiling apart
    assert max(map(len, printed.splitlines())) <= 80


def test_floor_and_ceiling_stay_out_of_the_ordering_against_the_paper(bounds_report):
    order = bounds_report.ordering
    assert len(order) and not (set(order["first"]) | set(order["second"])) & set(BOUNDS)
    for line in tables.ordering_lines(bounds_report):
        assert "floor" not in line and "ceiling" not in line


def test_an_exact_tie_between_two_variants_is_tied_not_agreeing(bounds_report):
    """EMG-MAE's LP equals the frozen ablation's on every seed: the paper orders them, we do not."""
    order = bounds_report.ordering.set_index(["metric", "first", "second"])
    for metric in ("lp_id", "lp_unseen"):
        pair = order.loc[(metric, "emg_mae", "frozen_emg")]
        assert pair["ours_first"] == pair["ours_second"] and pair["paper_first"] != pair["paper_second"]
        assert pair["verdict"] == "tied here"
    line = next(line for line in tables.ordering_lines(bounds_report) if line.startswith("LP in-dist"))
    assert "of 6 pairs, 4 in the paper's order, 1 reversed, 1 tied here" in line
    tau, pairs = stats.rank_agreement({"a": 0.4, "b": 0.4, "c": 0.9}, {"a": 0.55, "b": 0.372, "c": 0.8})
    assert [p.verdict for p in pairs] == ["tied here", "agrees", "agrees"]
    assert tau < 1  # a tie here is not a concordant pair


def test_data_seeds_that_follow_the_run_seed_are_no_configuration_difference(fixture_suite):
    """With data.synth.seed_per_run each run seed reads its own data (data.synth.seed = base + run seed): that is
    the protocol, not a difference; data seeds that differ otherwise are one."""
    def records(data_seeds):
        return [make_record(fixture_suite, "cpep", seed, (0.7, 0.5, 0.6, 0.4), **{"data.synth.seed": data_seed})
                for seed, data_seed in enumerate(data_seeds)]
    assert not report.config_differences(records([0, 1, 2]), fixture_suite)
    assert not report.config_differences(records([10, 11, 12]), fixture_suite)
    assert not report.config_differences(records([7, 7, 7]), fixture_suite)
    notes = report.config_differences(records([0, 5, 2]), fixture_suite)
    assert len(notes) == 1 and notes[0].startswith("configuration differs: data.synth.seed = 0 in 1 run")
