"""Encoders, MAE, InfoNCE and the evaluation arithmetic."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.tds import Emg2PoseRegressor, TdsFeaturizer
from cpep.evaluate import balanced_accuracy, linear_probe, zero_shot
from cpep.models import Encoder, MaskedAutoencoder, patchify
from cpep.objectives import Temperature, symmetric_info_nce


def encoder(pooling="cls", bin_size=1):
    return Encoder(channels=4, samples=80, patch=20, width=16, depth=1, heads=2, mlp_ratio=2.0, pooling=pooling,
                   bin_size=bin_size)


def test_patchify_keeps_each_patch_contiguous_in_time():
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 2, 12)
    assert torch.equal(p[0, 1], torch.cat([x[0, c, 4:8] for c in range(3)]))


def test_pooling_cls_and_mean_differ_and_shapes_match():
    torch.manual_seed(0)
    cls, mean = encoder("cls"), encoder("mean")
    mean.load_state_dict(cls.state_dict())
    x = torch.randn(3, 4, 80)
    assert cls(x).shape == mean(x).shape == (3, 16)
    assert not torch.allclose(cls(x), mean(x))


def test_mae_encodes_only_the_visible_tokens_and_scores_only_masked_patches():
    torch.manual_seed(0)
    mae = MaskedAutoencoder(encoder(), decoder_width=8, decoder_depth=1, heads=2, mask_ratio=0.5)
    seen = []
    mae.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    x = torch.randn(2, 4, 80)
    loss = mae(x)
    assert seen == [1 + 2]  # [CLS] + half of the 4 patches
    assert loss.ndim == 0 and loss > 0
    # Scored on masked patches only: with the prediction forced to zero, loud visible patches cost nothing.
    with torch.no_grad():
        mae.predict.weight.zero_()
        mae.predict.bias.zero_()
    torch.manual_seed(5)
    visible = torch.rand(2, 4).argsort(dim=1)[:, :2]  # the draw the MAE makes next with this seed
    x = torch.ones(2, 4, 80)
    for b in range(2):
        for p in visible[b].tolist():
            x[b, :, 20 * p:20 * (p + 1)] = 1000.0
    torch.manual_seed(5)
    assert mae(x).item() == pytest.approx(1.0)


def test_log_power_tokens_span_the_same_time_as_raw_ones():
    e = encoder(bin_size=5)
    assert e.num_patches == 4 and e.token_size == 4
    x = torch.randn(2, 4, 80)
    assert e.patches(x).shape == (2, 4, 4 * 4)
    loud = x.clone()
    loud[..., 20:40] *= 10  # the second patch's amplitude only
    diff = (e.patches(loud) - e.patches(x)).abs().sum(-1)[0]
    assert diff[1] > 0 and diff[0] == diff[2] == diff[3] == 0


def test_info_nce_is_low_for_aligned_pairs_and_log_batch_for_unrelated_ones():
    torch.manual_seed(0)
    v = torch.randn(64, 32)
    scale = Temperature(0.02).scale()
    assert symmetric_info_nce(v, v, scale) < 1e-3
    u = torch.randn(64, 32)
    assert abs(symmetric_info_nce(u, v, torch.tensor(1e-6)) - math.log(64)) < 1e-3
    # symmetric: swapping the modalities gives the same loss
    assert torch.isclose(symmetric_info_nce(u, v, scale), symmetric_info_nce(v, u, scale))


def test_temperature_starts_at_0_02_and_is_learnable():
    t = Temperature(0.02)
    assert abs(float(t()) - 0.02) < 1e-7 and t.log_scale.requires_grad
    assert not Temperature(0.02, learnable=False).log_scale.requires_grad


def test_balanced_accuracy_weighs_classes_equally():
    target = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    pred = torch.zeros(10, dtype=torch.long)  # majority-class guess: 80 % accuracy, 50 % balanced
    assert balanced_accuracy(pred, target, 2) == pytest.approx(0.5)
    pred = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    assert balanced_accuracy(pred, target, 2) == pytest.approx((4 / 8 + 1 / 2) / 2)


def test_zero_shot_takes_the_majority_of_the_k_nearest_references():
    refs = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3 + [[0.7, 0.7]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    queries = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.9, 0.8]])
    qlabels = torch.tensor([0, 1, 0])
    # k=1: the nearest reference decides; the third query's nearest is the (0.7, 0.7) reference of class 1.
    assert zero_shot(queries, refs, labels, qlabels, 2, k=1) == pytest.approx((1 / 2 + 1) / 2)
    # k=7 votes 4:3 for class 1 for every query.
    assert zero_shot(queries, refs, labels, qlabels, 2, k=7) == pytest.approx(0.5)
    # k=4 for query 3: (0.7,0.7) and three class-0 references -> class 0.
    assert zero_shot(queries, refs, labels, qlabels, 2, k=4) == pytest.approx(1.0)


def test_zero_shot_ties_go_to_the_more_similar_class():
    refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.2], [0.2, 1.0]])
    assert zero_shot(q, refs, torch.tensor([0, 1]), torch.tensor([0, 1]), 2, k=2) == 1.0


def test_linear_probe_separates_separable_classes_and_not_noise():
    torch.manual_seed(0)
    y = torch.arange(4).repeat_interleave(50)
    x = torch.randn(200, 8) + 4 * torch.nn.functional.one_hot(y, 8).float()
    assert linear_probe(x[::2], y[::2], x[1::2], y[1::2], 4) == 1.0
    noise = torch.randn(200, 8)
    assert linear_probe(noise[::2], y[::2], noise[1::2], y[1::2], 4) < 0.5


def test_tds_featurizer_matches_emg2pose_geometry():
    f = TdsFeaturizer(width=32, features=16)
    out = f(torch.randn(2, 16, 1790 + 80 * 4 + 1))
    assert out.shape == (2, 5, 16)  # stride 80 after 1,790 samples of left context
    assert f(torch.randn(1, 16, 1791)).shape[1] == 1
    reg = Emg2PoseRegressor(2000, 10, width=32, features=16, hidden=32)
    assert reg(torch.randn(2, 16, 2000)).shape == (2, 20, 3)
    assert reg.target(torch.randn(2, 20, 200)).shape == (2, 20, 3)
    assert reg.target_index.tolist() == [179, 187, 195]


def test_weight_decay_spares_biases_norms_tokens_and_the_temperature():
    from cpep.pipeline import Aligned
    from cpep.train import parameter_groups
    from conftest import TINY
    from cpep import config
    model = Aligned(config.resolve(TINY))
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    exempt = {id(p) for p in no_decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in exempt}
    assert "temperature.log_scale" in names and "emg.cls_token" in names and "emg.pos_embed" in names
    assert "emg.embed.bias" in names and "emg.norm.weight" in names
    assert "emg.embed.weight" not in names and "head.net.0.weight" not in names
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
