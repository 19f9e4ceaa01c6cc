"""Outside encoders: CPEP's own encoders exported as TorchScript give the built-in run's numbers, an emg2pose
checkpoint loads by its own module names and evaluates, a changed encoder file is never read from an older
evaluation, and a bad encoder is one line and exit code 2 before any work."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, tiny_args
from test_cli import cli, records

from baselines import emg2pose_checkpoint
from bench import plugins
from bench.report import select
from bench.run import planner
from bench.run.outside import with_encoder
from bench.run.store import Store
from bench.suites import load as load_suite

WIDTH, FEATURES = 32, 16  # a small TDS featurizer: emg2pose's is 256 wide with 64 features


def trace(module, example, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates TorchScript; it still writes it
        torch.jit.trace(module.eval(), example).save(str(path))
    return path


def export_cpep(results, out):
    """CPEP's trained EMG encoder, EMG encoder + projection head (zero-shot queries) and pose encoder of the smoke
    run in `results`, as TorchScript files."""
    from bench.methods.cpep import aligned
    rec = records(results)["cpep/seed-0"]
    cfg = rec["config"]
    data = plugins.get("dataset", "synthetic").open(cfg, Store(results))
    model = aligned(cfg, data)
    align = next(s["key"] for s in rec["stages"] if s["kind"] == "align")
    model.load_state_dict(torch.load(results / "stages" / f"align-{align}" / "model.pt"))
    emg = torch.randn(3, data.channels, cfg["data"]["window"])
    pose = torch.randn(3, data.pose_dims, cfg["data"]["window"] // cfg["data"]["pose_decimation"])
    return {"emg": trace(model.emg, emg, out / "emg.pt"),
            "query": trace(torch.nn.Sequential(model.emg, model.head), emg, out / "query.pt"),
            "pose": trace(model.pose, pose, out / "pose.pt")}


@pytest.fixture(scope="module")
def cpep_run(tmp_path_factory, make_results):
    results = make_results(tmp_path_factory.mktemp("outside"))
    cli("run", "--suite", "smoke", "--variants", "cpep", "--runs-dir", results, *tiny_args())
    return results, export_cpep(results, tmp_path_factory.mktemp("exported"))


def test_cpep_exported_as_torchscript_gives_the_built_in_metrics(cpep_run):
    results, files = cpep_run
    out = cli("evaluate", "--suite", "smoke", "--encoder", files["emg"], "--query-encoder", files["query"],
              "--pose-encoder", files["pose"], "--name", "exported", "--label", "CPEP exported",
              "--runs-dir", results, *tiny_args())
    assert f"outside.emg: TorchScript {files['emg']}" in out.stdout
    recs = records(results)
    built_in, outside = recs["cpep/seed-0"], recs["exported/seed-0"]
    assert outside["status"] == "done" and outside["method"] == "outside_encoder"
    assert set(outside["metrics"]) == {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}
    assert outside["metrics"] == built_in["metrics"] and outside["by_user"] == built_in["by_user"]
    assert [s["kind"] for s in outside["stages"]] == ["eval"]
    assert outside["config"]["outside"] == {k: str(v) for k, v in files.items()}
    report = cli("report", "--suite", "smoke", "--runs-dir", results, "--format", "md")
    assert "CPEP exported" in report.stdout
    (table,) = results.glob("report/smoke/*/table.md")
    row = next(line for line in table.read_text().splitlines() if line.startswith("| CPEP exported |"))  # main
    assert f"{built_in['metrics']['lp_id']:.3f}" in row


def test_without_a_pose_encoder_zero_shot_is_not_applicable(cpep_run):
    results, files = cpep_run
    cli("evaluate", "--suite", "smoke", "--encoder", files["emg"], "--name", "lp_only", "--runs-dir", results,
        *tiny_args())
    rec = records(results)["lp_only/seed-0"]
    assert rec["metrics"]["lp_id"] == records(results)["cpep/seed-0"]["metrics"]["lp_id"]
    assert rec["metrics"]["zs_id"] is None and rec["not_applicable"]["zs_id"] == "no pose encoder"


def test_a_changed_encoder_file_is_evaluated_again_and_its_old_record_left_out(cpep_run, tmp_path):
    _, files = cpep_run
    encoder = shutil.copy(files["emg"], tmp_path / "encoder.pt")
    suite = with_encoder(load_suite("smoke"), str(encoder), None, None, "outside", None)

    def keys():
        (run,) = planner.plan(suite, variants=["outside"], overrides=TINY)
        return {s.kind: s.key for s in run.stages}, run

    before, run = keys()
    record = {"method": "outside_encoder", "config": run.config, "code": run.code, "stages": []}
    assert select.code_changed(record) == ""
    shutil.copy(files["query"], encoder)  # other weights at the same path
    after, _ = keys()
    assert after["eval"] != before["eval"]
    assert "computed by older code" in select.code_changed(record)
    shutil.copy(files["emg"], encoder)
    assert keys()[0] == before  # the same content, the same evaluation
    # the other variants' stages do not depend on the file
    cpep = [{s.kind: s.key for s in r.stages} for r in planner.plan(suite, variants=["cpep"], overrides=TINY)]
    assert cpep == [{s.kind: s.key for s in r.stages} for r in planner.plan(load_suite("smoke"), variants=["cpep"],
                                                                            overrides=TINY)]


# ------------------------------------------------------------------ emg2pose checkpoints

def emg2pose_weights(channels: int = 16) -> dict[str, torch.Tensor]:
    """A TDS featurizer's weights under emg2pose's TdsNetwork names (networks.py), random."""
    g = torch.Generator().manual_seed(0)
    shapes = {"layers.0.conv.0.weight": (WIDTH, channels, 11), "layers.1.conv.0.weight": (WIDTH, WIDTH, 5),
              "layers.3.linear_layer.weight": (FEATURES, WIDTH), "layers.3.linear_layer.bias": (FEATURES,)}
    for i in (0, 1):
        shapes |= {f"layers.{i}.conv.0.bias": (WIDTH,), f"layers.{i}.norm.weight": (WIDTH,),
                   f"layers.{i}.norm.bias": (WIDTH,)}
    for stage, (kernel_in, kernel) in ((2, (17, 9)), (3, (9, 5))):
        p = f"layers.{stage}.layers."
        shapes |= {p + "conv1dblock.conv.0.weight": (WIDTH, WIDTH, kernel_in), p + "conv1dblock.conv.0.bias": (WIDTH,),
                   p + "conv1dblock.norm.weight": (WIDTH,), p + "conv1dblock.norm.bias": (WIDTH,)}
        for block in (0, 2):
            b = f"{p}tds_block.tds_conv_blocks.{block}."
            shapes |= {b + "conv2d.weight": (16, 16, 1, kernel), b + "conv2d.bias": (16,),
                       b + "layer_norm.weight": (WIDTH,), b + "layer_norm.bias": (WIDTH,)}
            f = f"{p}tds_block.tds_conv_blocks.{block + 1}."
            shapes |= {f + "fc_block.0.weight": (WIDTH, WIDTH), f + "fc_block.0.bias": (WIDTH,),
                       f + "fc_block.2.weight": (WIDTH, WIDTH), f + "fc_block.2.bias": (WIDTH,),
                       f + "layer_norm.weight": (WIDTH,), f + "layer_norm.bias": (WIDTH,)}
    return {name: torch.randn(shape, generator=g) * 0.2 + (1.0 if name.endswith("norm.weight") else 0.0)
            for name, shape in shapes.items()}


def emg2pose_forward(w: dict, x: torch.Tensor) -> torch.Tensor:
    """emg2pose's TdsNetwork forward written from its description, on its own names: (B, C, T) -> (B, frames, F)."""
    def norm(x, p):  # LayerNorm over channels of (B, C, T)
        return F.layer_norm(x.transpose(1, 2), (x.shape[1],), w[p + "weight"], w[p + "bias"]).transpose(1, 2)

    def conv_block(x, p, stride):
        return norm(F.relu(F.conv1d(x, w[p + "conv.0.weight"], w[p + "conv.0.bias"], stride)), p + "norm.")

    x = conv_block(conv_block(x, "layers.0.", 5), "layers.1.", 2)
    for stage, stride in ((2, 4), (3, 2)):
        x = conv_block(x, f"layers.{stage}.layers.conv1dblock.", stride)
        for block in (0, 2):
            p = f"layers.{stage}.layers.tds_block.tds_conv_blocks.{block}."
            b, c, t = x.shape
            y = F.relu(F.conv2d(x.reshape(b, 16, c // 16, t), w[p + "conv2d.weight"], w[p + "conv2d.bias"]))
            y = y.reshape(b, c, -1)
            x = norm(y + x[..., -y.shape[-1]:], p + "layer_norm.")
            q = f"layers.{stage}.layers.tds_block.tds_conv_blocks.{block + 1}."
            z = x.transpose(1, 2)
            z = F.linear(F.relu(F.linear(z, w[q + "fc_block.0.weight"], w[q + "fc_block.0.bias"])),
                         w[q + "fc_block.2.weight"], w[q + "fc_block.2.bias"])
            x = norm((z + x.transpose(1, 2)).transpose(1, 2), q + "layer_norm.")
    return F.linear(x.transpose(1, 2), w["layers.3.linear_layer.weight"], w["layers.3.linear_layer.bias"])


def write_checkpoint(path, weights, tmp_path):
    """A Lightning checkpoint as emg2pose writes one: the featurizer under model.network, a decoder beside it, and
    hyper-parameters pickled as objects of a module the reading process cannot import (Hydra's configuration)."""
    (tmp_path / "unimportable_conf.py").write_text("class DictConfig:\n    def __init__(self, d):\n"
                                                   "        self.content = d\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import unimportable_conf
        conf = unimportable_conf.DictConfig({"_target_": "emg2pose.networks.TdsNetwork"})
        state = {f"model.network.{k}": v for k, v in weights.items()} | {"model.decoder.0.weight": torch.ones(2, 2)}
        torch.save({"state_dict": state, "hyper_parameters": {"network_conf": conf}, "epoch": 3}, path,
                   pickle_protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("unimportable_conf", None)
    return path


def test_an_emg2pose_checkpoint_maps_onto_the_tds_featurizer(tmp_path):
    weights = emg2pose_weights()
    path = write_checkpoint(tmp_path / "emg2pose.ckpt", weights, tmp_path)
    model = emg2pose_checkpoint.featurizer(path).eval()
    x = torch.randn(2, 16, 2000)
    with torch.no_grad():
        assert torch.allclose(model(x), emg2pose_forward(weights, x), atol=1e-5)
    assert model.out.out_features == FEATURES and model.net[0].conv.out_channels == WIDTH
    described = emg2pose_checkpoint.expectations(model, 16, 2000.0, 2000, False)
    assert "16 channels at 2000 Hz, EMG as recorded" in described
    with pytest.raises(Exception, match="reads 16 EMG channels; this dataset has 12"):
        emg2pose_checkpoint.expectations(model, 12, 2000.0, 2000, False)
    with pytest.raises(Exception, match="standardises each window"):
        emg2pose_checkpoint.expectations(model, 16, 2000.0, 4000, True)
    extra = weights | {"layers.3.layers.tds_block.tds_conv_blocks.4.conv2d.weight": torch.zeros(16, 16, 1, 5)}
    with pytest.raises(Exception, match="differs from emg2pose's published one"):
        emg2pose_checkpoint.featurizer(write_checkpoint(tmp_path / "deeper.ckpt", extra, tmp_path))


def test_an_emg2pose_checkpoint_evaluates(tmp_path, make_results):
    results = make_results(tmp_path / "runs")
    path = write_checkpoint(tmp_path / "emg2pose.ckpt", emg2pose_weights(), tmp_path)
    out = cli("evaluate", "--suite", "smoke", "--encoder", path, "--runs-dir", results, *tiny_args())
    assert "16 channels at 2000 Hz, EMG as recorded" in out.stdout
    rec = records(results)["emg2pose/seed-0"]
    assert rec["status"] == "done" and 0 <= rec["metrics"]["lp_id"] <= 1 and rec["by_user"]["lp_id"]
    assert rec["not_applicable"]["zs_unseen"] == "no pose encoder"


# ------------------------------------------------------------------ bad encoders

class WrongShape(torch.nn.Module):
    def forward(self, x):
        return x[:, :, :4]


class Nan(torch.nn.Module):
    def forward(self, x):
        return x.mean(-1) * float("nan")


class Mean(torch.nn.Module):
    def forward(self, x):
        return x.mean(-1)


@pytest.fixture
def bad(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a module\n")
    emg, pose = torch.randn(2, 16, 2000), torch.randn(2, 20, 200)
    return {"text": text, "shape": trace(WrongShape(), emg, tmp_path / "shape.pt"),
            "nan": trace(Nan(), emg, tmp_path / "nan.pt"), "emg": trace(Mean(), emg, tmp_path / "mean.pt"),
            "pose": trace(Mean(), pose, tmp_path / "pose.pt"),
            "eight_channels": write_checkpoint(tmp_path / "eight.ckpt", emg2pose_weights(8), tmp_path)}


@pytest.mark.parametrize("args, message", [
    (["--encoder", "{text}"], "neither a TorchScript module nor an emg2pose checkpoint"),
    (["--encoder", "{shape}"], "maps emg (4, 16, 2000) to (4, 16, 4); an encoder maps (B, C, T) to (B, D)"),
    (["--encoder", "{nan}"], "gives non-finite embeddings (NaN or inf)"),
    (["--encoder", "{emg}", "--pose-encoder", "{pose}"], "the query's 16-wide embedding with outside.pose's 20-wide"),
    (["--encoder", "{eight_channels}"], "reads 8 EMG channels; this dataset has 16"),
    (["--encoder", "{tmp}/absent.pt"], "no file"),
    (["--encoder", "no_such_package.encoders:build"], "no module no_such_package.encoders is importable"),
    (["--encoder", "{emg}", "--name", "cpep"], "has a variant of that name already"),
])
def test_a_bad_encoder_is_one_line_and_exit_2_before_any_work(bad, tmp_path, make_results, monkeypatch, capsys,
                                                              args, message):
    from bench import cli as command
    results = make_results(tmp_path / "runs")
    files = {k: str(v) for k, v in bad.items()} | {"tmp": str(tmp_path)}
    monkeypatch.setattr(sys, "argv", ["cpep-bench", "evaluate", "--suite", "smoke", *[a.format(**files) for a in args],
                                      "--runs-dir", str(results), *tiny_args()])
    with pytest.raises(SystemExit) as exit_:
        command.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert message in err
    assert not list(results.glob("runs/**/*.json")) and not list(results.glob("stages/eval-*"))


def test_an_entry_point_builds_the_encoder(tmp_path, make_results):
    package = tmp_path / "site" / "my_encoders"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mean.py").write_text("import torch\n\n\nclass Mean(torch.nn.Module):\n"
                                     "    def forward(self, x):\n        return x.pow(2).mean(-1)\n\n\n"
                                     "def build():\n    return Mean()\n")
    results = make_results(tmp_path / "runs")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", "from bench.cli import main; main()", "evaluate", "--suite", "smoke",
                           "--encoder", "my_encoders.mean:build", "--runs-dir", str(results), *tiny_args()],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr
    rec = records(results)["my_encoders.mean.build/seed-0"]
    assert rec["status"] == "done" and rec["config"]["outside"]["emg"] == "my_encoders.mean:build"
    assert 0 <= rec["metrics"]["lp_id"] <= 1 and "outside.emg: entry point my_encoders.mean:build" in done.stdout
