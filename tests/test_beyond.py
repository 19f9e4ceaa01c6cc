"""Objectives and a metric beyond the paper: SigLIP's sigmoid loss, soft-target InfoNCE, few-shot linear probes,
and the `beyond` suite that runs them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, tiny_args
from test_cli import cli, records

from bench import plugins, suites
from bench.report.frames import metric_name


def objective(name: str, **settings):
    """An objective plug-in with its section's defaults, or these settings."""
    return plugins.get("objective", name).configured(plugins.resolve({f"{name}.{k}": v for k, v in settings.items()}))


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ------------------------------------------------------------------ SigLIP

def test_siglip_is_the_per_pair_sigmoid_loss_over_the_batch_size():
    u, v = unit(3, 4, seed=1), unit(3, 4, seed=2)
    scale, bias = torch.tensor(7.0), torch.tensor(-2.5)
    direct = 0.0
    for i in range(3):
        for j in range(3):
            logit = 7.0 * float(u[i] @ v[j]) - 2.5
            z = 1.0 if i == j else -1.0
            direct -= math.log(1.0 / (1.0 + math.exp(-z * logit)))
    loss = objective("siglip")(u, v, scale, bias)
    assert float(loss) == pytest.approx(direct / 3, rel=1e-6)


def test_siglip_trains_a_bias_from_minus_10_and_the_temperature():
    from bench.methods.cpep import aligned
    cfg = plugins.resolve(TINY, {"align.objective": "siglip"})  # its section starts both, as SigLIP does
    model = aligned(cfg, SimpleNamespace(channels=16, pose_dims=20))
    assert model.logit_bias.item() == -10.0 and model.temperature.scale().item() == pytest.approx(10.0)
    g = torch.Generator().manual_seed(0)
    emg, pose = torch.randn(8, 16, 2000, generator=g), torch.randn(8, 20, 200, generator=g)
    model(emg, pose).backward()
    for grad in (model.logit_bias.grad, model.temperature.log_scale.grad):
        assert grad is not None and torch.isfinite(grad) and float(grad) != 0.0


# ------------------------------------------------------------------ soft-target InfoNCE

def test_soft_targets_approach_infonce_when_every_pose_is_distinct():
    soft, infonce = objective("soft_infonce"), objective("infonce")
    u, v, scale = unit(8, 64, seed=3), unit(8, 64, seed=4), torch.tensor(20.0)
    targets = soft.targets(v)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert float(targets.diagonal().min()) > 0.999
    assert float(soft(u, v, scale)) == pytest.approx(float(infonce(u, v, scale)), rel=1e-4)
    wide = objective("soft_infonce", target_temperature=1.0)
    # poses need not be near-identical to share targets: no longer InfoNCE
    assert abs(float(wide(u, v, scale)) - float(infonce(u, v, scale))) > 0.1


def test_two_identical_poses_are_not_negatives_of_each_other():
    soft, infonce = objective("soft_infonce"), objective("infonce")
    v = unit(6, 64, seed=5)
    v[1] = v[0]  # windows 0 and 1 hold the same pose
    targets = soft.targets(v)
    assert float(targets[0, 0]) == pytest.approx(float(targets[0, 1])) == pytest.approx(0.5, abs=1e-3)
    # EMG embeddings matching their poses exactly, at a high logit scale: the best any embedding can do
    u, scale = v.clone(), torch.tensor(100.0)
    entropy = -(targets * targets.clamp_min(1e-30).log()).sum(1).mean()
    assert float(soft(u, v, scale)) == pytest.approx(float(entropy), abs=1e-3)  # the soft loss at its floor
    # InfoNCE still charges windows 0 and 1 log 2 each, in both directions, for not telling them apart
    assert float(infonce(u, v, scale)) == pytest.approx(2 * math.log(2) / 6, rel=1e-3)


def test_matching_a_near_identical_pose_instead_costs_little_more():
    soft, infonce = objective("soft_infonce"), objective("infonce")
    g = torch.Generator().manual_seed(5)
    v = unit(6, 64, seed=6)
    v[1] = F.normalize(v[0] + 0.05 * F.normalize(torch.randn(64, generator=g), dim=0), dim=0)
    matched, swapped, scale = v.clone(), v.clone(), torch.tensor(50.0)
    swapped[[0, 1]] = v[[1, 0]]  # windows 0 and 1 each matched to the other's pose

    def extra(objective):
        return float(objective(swapped, v, scale)) - float(objective(matched, v, scale))

    assert extra(infonce) > 0.01
    assert abs(extra(soft)) < 0.1 * extra(infonce)


# ------------------------------------------------------------------ few-shot linear probes

def test_few_shot_draws_k_windows_per_class_by_the_seed():
    from bench.metrics.few_shot import sample
    labels = torch.arange(4).repeat_interleave(30)[torch.randperm(120, generator=torch.Generator().manual_seed(0))]
    labels[labels == 3] = 2  # class 3 has no windows; class 2 has 60

    def draw(seed, k):
        return sample(labels, 4, k, torch.Generator().manual_seed(seed))

    for k in (1, 5, 10, 20):
        idx = draw(0, k)
        assert torch.bincount(labels[idx], minlength=4).tolist() == [k, k, k, 0]
        assert len(set(idx.tolist())) == len(idx)
        assert torch.equal(idx, draw(0, k))
    assert not torch.equal(draw(0, 5), draw(1, 5))
    assert torch.bincount(labels[draw(0, 40)], minlength=4).tolist() == [30, 30, 40, 0]
    assert torch.bincount(labels[draw(0, 80)], minlength=4).tolist() == [30, 30, 60, 0]  # fewer than k: all


def test_few_shot_scores_follow_the_run_seed():
    metric = plugins.get("metric", "few_shot")
    g = torch.Generator().manual_seed(0)
    centres = 1.2 * torch.randn(3, 8, generator=g)
    y, yt = torch.arange(3).repeat(40), torch.arange(3).repeat(20)
    x, xt = centres[y] + torch.randn(120, 8, generator=g), centres[yt] + torch.randn(60, 8, generator=g)
    cfg = plugins.resolve(TINY)

    def scores(seed):
        return metric.compute((x, y), (xt, yt), 3, cfg, torch.device("cpu"), seed=seed)

    first = scores(0)
    assert list(first) == list(metric.keys) == ["lp_k01", "lp_k05", "lp_k10", "lp_k20"]
    assert all(0.0 <= value <= 1.0 for value in first.values())
    assert scores(0) == first
    assert scores(1) != first
    assert first["lp_k20"] > 1.0 / 3 + 0.2  # well above chance with 20 windows of separated classes


# ------------------------------------------------------------------ the suite

def test_the_beyond_suite_lists_its_variants_and_metrics():
    suite = suites.load("beyond")
    bounds = ["emg_log_power", "pose_features"]  # the floor and ceiling every suite includes
    assert [v for v in suite.names if v not in bounds] == ["cpep", "siglip", "soft_infonce", "emg_mae"]
    assert set(bounds) <= set(suite.names) and suite.seeds == (0, 1, 2)
    assert "few_shot" in suite.overrides["eval.metrics"]
    assert "beyond" in cli("suites").stdout


def test_a_tiny_beyond_run_records_few_shot_probes(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    cli("run", "--suite", "beyond", "--seeds", "0", "--variants", "siglip,soft_infonce,emg_mae",
        "--runs-dir", results, *tiny_args())
    recs = records(results)
    assert set(recs) == {"siglip/seed-0", "soft_infonce/seed-0", "emg_mae/seed-0"}
    keys = [f"lp_k{k:02d}_{kind}" for k in (1, 5, 10, 20) for kind in ("id", "unseen")]
    for rec in recs.values():
        assert rec["status"] == "done", rec["error"]
        for key in keys + ["lp_id", "lp_unseen"]:
            assert math.isfinite(rec["metrics"][key]) and 0.0 <= rec["metrics"][key] <= 1.0, (rec["variant"], key)

    def align_stage(variant):
        return next(s for s in recs[f"{variant}/seed-0"]["stages"] if s["kind"] == "align")

    def aligned(variant):
        return torch.load(results / "stages" / f"align-{align_stage(variant)['key']}" / "model.pt")

    assert aligned("siglip")["logit_bias"].item() != -10.0  # SigLIP's bias and temperature trained
    assert align_stage("siglip")["history"][-1]["temperature"] != pytest.approx(0.1)
    assert "logit_bias" not in aligned("soft_infonce")
    cli("report", "--suite", "beyond", "--runs-dir", results, "--out", tmp_path / "report")
    header = (tmp_path / "report" / "table.md").read_text().split("| method |", 1)[1].splitlines()[0]
    columns = [c.strip() for c in header.split("|") if c.strip() not in ("", "paper", "IQM")]
    few_shot = [metric_name(key) for key in keys]  # "lp_k01 in-dist"...
    assert columns[1:] == ["LP in-dist", "LP unseen", "ZS in-dist", "ZS unseen"] + few_shot  # after the four
    assert {"few_shot.png", "few_shot.svg"} <= {p.name for p in (tmp_path / "report").iterdir()}
