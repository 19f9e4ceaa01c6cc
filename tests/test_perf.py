"""`cpep-bench perf`: end to end on tiny settings, the FLOP counting, the projection's arithmetic and its stage
counts from the planner. No timing is asserted: only that rates are measured, finite and where they belong."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, tiny_args
from rich.console import Console
from test_cli import assert_one_line_error, cli
from torch.utils import flop_counter

from bench import plugins
from bench.perf import projection, roofline, steps, table, timing

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PLUGINS = Path(__file__).parent / "plugins"


def planned_rows():
    """(kind, model) of the step rows perf times at the tiny settings, and which it times once for two sizes."""
    cfg = plugins.resolve(TINY)
    timed, same_as = steps.plan(steps.default_methods(), steps.sizes(cfg, TINY, quick=True), DEVICE)
    return {(t.kind, t.size.role) for t in timed}, same_as


@pytest.fixture(scope="module")
def quick(make_results, tmp_path_factory):
    results = make_results(tmp_path_factory.mktemp("perf"))
    out = cli("perf", "--quick", "--project", "paper", "--runs-dir", results, *tiny_args())
    written = sorted((results / "perf").iterdir())
    return out, written


def test_quick_perf_writes_the_table_as_csv_and_json(quick):
    out, written = quick
    assert [p.suffix for p in written] == [".csv", ".json"] and written[0].stem == written[1].stem
    assert written[0].name.startswith(f"perf-{DEVICE.type}-")
    for path in written:
        assert f"wrote {path}" in out.stdout
    document = json.loads(written[1].read_text())
    rows = document["rows"]
    with written[0].open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == tuple(c for c, _ in table.COLUMNS)
        assert [r["what"] for r in reader] == [r["what"] for r in rows]
    sections = [r["section"] for r in rows]
    expected, same_as = planned_rows()
    n = len(expected)
    assert sections == ["roofline"] + ["step"] * n + ["data"] * 4 + ["zero-shot"] + ["contention"] * 2
    assert {(r["kind"], r["model"]) for r in rows if r["section"] == "step"} == expected
    for r in rows:
        assert math.isfinite(r["rate"]) and r["rate"] > 0, r
        assert r["units_per_repeat"] >= 1 and r["repeats"] >= 1
    gemm = rows[0]
    assert gemm["unit"] == "TFLOP/s" and gemm["of_roofline"] == 1.0 and gemm["gflop"] == 2 * 256 ** 3 / 1e9
    assert gemm["tflop_per_s"] == gemm["rate"]
    for r in rows[1:n + 1]:
        assert r["gflop"] > 0 and r["peak_memory_mb"] >= 0 and r["batch"] >= 1
        assert r["tflop_per_s"] == pytest.approx(r["gflop"] * 1e9 * r["rate"] / r["batch"] / 1e12)
        assert r["of_roofline"] == pytest.approx(r["tflop_per_s"] / gemm["tflop_per_s"])
    copy, *paths = rows[n + 1:n + 5]
    assert [p["what"] for p in paths] == ["HDF5 read, 1 process", "window cache gather (mmap)", "slice from memory"]
    assert copy["vs_reference"] == 1.0
    assert all(p["vs_reference"] == pytest.approx(p["rate"] / copy["rate"]) for p in paths)
    shot = rows[n + 5]
    assert shot["of_roofline"] > 0 and shot["of_roofline"] == pytest.approx(shot["tflop_per_s"] / gemm["tflop_per_s"])
    idle, busy = rows[-2:]
    assert document["slowdown_beside_busy_process"] == pytest.approx(idle["rate"] / busy["rate"])
    assert document["torch_threads"] == TINY["train.threads"]  # sized as the stages size it
    assert document["precision"] == ("bf16" if torch.cuda.is_available() else "float32")
    assert f"torch threads {document['torch_threads']}" in out.stdout
    assert document["provenance"]["git"] and document["same_as"] == same_as
    assert document["data"].startswith("data: synthetic at ") and document["data"] in out.stdout


def test_every_stage_of_the_paper_methods_is_timed_by_its_own_step(quick):
    """Pose-MAE, EMG-MAE, PoseT, emg2pose's TDS regression and the alignment (also running its pose encoder each
    step): each stage its method declares, built as a run builds it, on a batch of its own batch size."""
    _, written = quick
    rows = [r for r in json.loads(written[1].read_text())["rows"] if r["section"] == "step"]
    default = {r["kind"]: r for r in rows if r["model"] == "default"}
    assert set(default) == {"pose_mae", "emg_mae", "poset", "tds_regression", "align", "align_uncached"}
    assert {r["method"] for r in default.values()} >= {"cpep", "poset", "tds_regression"}
    assert default["align"]["batch"] == TINY["align.batch_size"] and default["emg_mae"]["batch"] == TINY["mae.batch_size"]
    assert default["align"]["work"] == default["align_uncached"]["work"]  # one stage, two ways to run it
    # emg2pose's featurizer is the same at every size here: timed once, its rate shared
    _, same_as = planned_rows()
    assert same_as == {"tds_regression@paper-base": "default", "tds_regression@paper-large": "default"}
    assert not any(r["kind"] == "tds_regression" and r["model"] != "default" for r in rows)


def test_the_default_table_fits_80_columns_with_every_cell_whole(quick):
    out, written = quick
    document = json.loads(written[1].read_text())
    lines = out.stdout.splitlines()
    shown = [line for line in lines if not line.startswith(("  measured ", "data: ", "wrote ", "perf on "))]
    assert max(len(line) for line in shown) <= 80, max(shown, key=len)
    for r in document["rows"]:
        cells = table._narrow(r)
        assert any(all(cell in line for cell in cells) for line in lines), cells  # one line holds the row whole
    for note in document["notes"]:  # each footnote once, wrapped
        assert out.stdout.count(note.split()[0] + " " + note.split()[1]) == 1, note
    narrow = Console(width=80, record=True, file=io.StringIO())
    narrow.print(table.render(document["rows"]))
    rendered = narrow.export_text().splitlines()
    for r in document["rows"]:
        assert any(all(c in line for c in table._narrow(r)) for line in rendered), r


def test_quick_perf_projects_the_paper_suite_from_its_own_rates(quick):
    out, written = quick
    document = json.loads(written[1].read_text())
    p, rows = document["projection"], document["rows"]
    assert "projection from measured step rates" in out.stdout
    eager = [r for r in p["rows"] if not r["size"].endswith(", compiled")]  # compiled rows: CUDA only
    assert [(r["scope"], r["model"]) for r in eager] == [
        ("one CPEP model", "paper-base"), ("one CPEP model", "paper-large"),
        ("whole paper suite", "paper-base"), ("whole paper suite", "paper-large")]
    one = eager[1]
    rate = {r["kind"]: r["rate"] for r in rows if r["model"] == "paper-large"}
    expected = 100 * p["windows_per_epoch"] * (1 / rate["pose_mae"] + 1 / rate["emg_mae"] + 1 / rate["align"]) / 3600
    assert one["hours"] == pytest.approx(expected) and "18 V100-hours" in one["paper"]
    assert all(r["not_projected"] == [] for r in p["rows"])
    suite = eager[3]  # the TDS stages at the rate timed once, for every size
    tds = next(r["rate"] for r in rows if r["kind"] == "tds_regression")
    assert suite["hours_by_kind"]["tds_regression"] == pytest.approx(500 * p["windows_per_epoch"] / tds / 3600)


def test_perf_times_a_plug_in_methods_stages(make_results, tmp_path):
    results = make_results(tmp_path / "runs")
    out = cli("perf", "--quick", "--method", "cnn_cpep", "--plugins", PLUGINS, "--wide", "--runs-dir", results,
              *tiny_args())
    document = json.loads(sorted((results / "perf").glob("*.json"))[0].read_text())
    timed = {(r["kind"], r["method"]) for r in document["rows"] if r["section"] == "step"}
    assert timed == {("cnn_align", "cnn_cpep"), ("pose_mae", "cnn_cpep")}
    assert document["methods"] == ["cnn_cpep"]
    assert "cnn_align step" in out.stdout and "GFLOP each" in out.stdout  # the wide table's columns
    assert document["contention_step"] == "pose_mae"


def test_an_unknown_method_is_a_one_line_error_before_work(tmp_path):
    result = cli("perf", "--quick", "--method", "nope", "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, "unknown method 'nope'")
    assert not (tmp_path / "perf").exists() and not (tmp_path / "data").exists()


def test_the_flops_of_a_matmul_are_counted_once():
    n = 64
    a, b = torch.randn(n, n), torch.randn(n, n)
    flops, seconds = timing.counted(lambda: a @ b, torch.device("cpu"))
    assert flops == 2 * n ** 3 and seconds >= 0
    row = roofline.measure(n, torch.device("cpu"), timing.Plan(repeats=2, repeat_s=0.0, row_s=0.0))
    assert row["gflop"] == 2 * n ** 3 / 1e9 and row["rate"] > 0 and row["size"] == "64^3 f32"


def test_attention_on_the_cpu_is_counted():
    """torch's counter misses the CPU attention kernel by itself: forward and backward are counted by torch's
    formulas for the CUDA kernels."""
    shape = (2, 3, 11, 8)  # batch, heads, tokens, head width
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    forward, _ = timing.counted(lambda: F.scaled_dot_product_attention(q, k, v), torch.device("cpu"))
    assert forward == 2 * (2 * 2 * 3 * 11 * 11 * 8)  # Q K^T, then the weights times V
    both, _ = timing.counted(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward(), torch.device("cpu"))
    assert both == forward + flop_counter.sdpa_backward_flop_count(shape, shape, shape, shape) > 2 * forward


def test_projection_arithmetic():
    assert projection.windows_per_epoch(2000, 2000.0) == 903_240  # 250.9 h of 1-s windows
    kinds = {"pose_mae": (1, 100), "emg_mae": (1, 100), "align": (1, 100), "custom": (2, 20)}
    p = projection.project(kinds, {"pose_mae": 20_000.0, "emg_mae": 20_000.0, "align": 10_000.0}, 900_000)
    assert p["hours_by_kind"] == pytest.approx({"pose_mae": 1.25, "emg_mae": 1.25, "align": 2.5})
    assert p["hours"] == pytest.approx(5.0) and p["window_steps"] == 270_000_000
    assert p["not_projected"] == ["custom"]


def test_projection_takes_each_kind_at_its_model_size():
    rows = [table.row("step", "x", rate, "windows/s", kind=kind, model=model) for kind, model, rate in (
        ("emg_mae", "paper-base", 1.0), ("align", "paper-base", 2.0), ("tds_regression", "paper-base", 3.0),
        ("emg_mae", "paper-large", 4.0), ("align", "paper-large", 5.0), ("tds_regression", "default", 6.0))]
    same = {"tds_regression@paper-large": "paper-base"}
    assert projection.rates_of(rows, "paper-large", same) == {"emg_mae": 4.0, "align": 5.0, "tds_regression": 3.0}
    rows.append(table.row("step", "x", 9.0, "windows/s", kind="align_compiled", model="paper-large"))
    compiled = projection.rates_of(rows, "paper-large", same, compiled=True)
    assert (compiled["emg_mae"], compiled["align"], compiled["tds_regression"]) == (4.0, 9.0, 3.0)


def test_the_paper_suites_stages_are_counted_by_the_planner():
    scopes = projection.suite_work("paper")
    assert scopes["one CPEP model"] == {"pose_mae": (1, 100), "emg_mae": (1, 100), "align": (1, 100)}
    assert scopes["whole paper suite"] == {kind: (5, 500) for kind in
                                           ("tds_regression", "emg_mae", "poset", "pose_mae", "align")}


def test_perf_help_describes_every_option():
    out = cli("perf", "--help").stdout
    for option in ("--set", "--method", "--plugins", "--device", "--repeats", "--quick", "--wide", "--project",
                   "--scale", "--hours", "--out", "--runs-dir"):
        assert option in out
    assert "roofline" in out and "GPU-hours" in out


def test_an_unknown_suite_to_project_is_a_one_line_error(tmp_path):
    result = cli("perf", "--quick", "--project", "nope", "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, "unknown suite 'nope'")
    assert not (tmp_path / "perf").exists()


def test_a_model_setting_the_steps_cannot_run_is_a_one_line_error(tmp_path):
    result = cli("perf", "--quick", "--set", "tds.width=40", "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, "tds.width (40) must be a positive multiple of 16")
    assert not (tmp_path / "data").exists() and not (tmp_path / "perf").exists()
