"""Encoders, MAE, InfoNCE and the evaluation arithmetic."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.tds import Emg2PoseRegressor, TdsFeaturizer
from cpep.nn.models import Encoder, MaskedAutoencoder, patchify, sincos_1d
from cpep.nn.temperature import MAX_LOGIT_SCALE, Temperature
from cpep.nn.train import Schedule, fit, parameter_groups
from cpep.probes import balanced_accuracy, linear_probe, zero_shot


def encoder(pooling="cls", bin_size=1, heads=2):
    return Encoder(channels=4, samples=80, patch=20, width=16, depth=1, heads=heads, mlp_ratio=2.0,
                   pooling=pooling, bin_size=bin_size)


def mae(mask_ratio=0.5, decoder_heads=2):
    return MaskedAutoencoder(encoder(), decoder_width=8, decoder_depth=1, decoder_heads=decoder_heads,
                             mask_ratio=mask_ratio)


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


def test_mae_encodes_only_the_kept_tokens_and_scores_only_removed_patches():
    torch.manual_seed(0)
    model = mae()
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    x = torch.randn(2, 4, 80)
    loss, pred, mask = model(x)
    assert seen == [1 + 2]  # [CLS] + half of the 4 patches
    assert loss.ndim == 0 and loss > 0
    assert pred.shape == (2, 4, 4 * 20) and mask.shape == (2, 4)
    # Scored on removed patches only: with the prediction forced to zero, loud kept patches cost nothing.
    with torch.no_grad():
        model.predict.weight.zero_()
        model.predict.bias.zero_()
    torch.manual_seed(5)
    kept = torch.rand(2, 4).argsort(dim=1)[:, :2]  # the draw the MAE makes next with this seed
    x = torch.ones(2, 4, 80)
    for b in range(2):
        for p in kept[b].tolist():
            x[b, :, 20 * p:20 * (p + 1)] = 1000.0
    torch.manual_seed(5)
    loss, _, mask = model(x)
    assert loss.item() == pytest.approx(1.0)
    assert mask.gather(1, kept).sum() == 0 and mask.sum() == 4


@pytest.mark.parametrize("n, ratio, keep", [(10, 0.7, 3), (4, 0.5, 2), (4, 0.9, 1), (5, 0.5, 2)])
def test_random_masking_keeps_keep_tokens_and_ids_restore_undoes_the_shuffle(n, ratio, keep):
    torch.manual_seed(0)
    x = torch.arange(3 * n * 2.0).reshape(3, n, 2)  # every token unique
    x_masked, mask, ids_restore = mae().random_masking(x, ratio)
    assert x_masked.shape == (3, keep, 2)
    assert mask.sum(dim=1).tolist() == [n - keep] * 3
    ids_shuffle = ids_restore.argsort(dim=1)
    shuffled = x.gather(1, ids_shuffle[..., None].expand(-1, -1, 2))
    assert torch.equal(shuffled[:, :keep], x_masked)
    assert torch.equal(shuffled.gather(1, ids_restore[..., None].expand(-1, -1, 2)), x)
    # the mask is in the original order: 0 exactly at the kept tokens
    for b in range(3):
        kept = {tuple(t) for t in x_masked[b].tolist()}
        assert [tuple(t) in kept for t in x[b].tolist()] == (mask[b] == 0).tolist()
    # a different draw per sample
    assert len({tuple(r) for r in ids_restore.tolist()}) > 1


def test_mae_loss_ignores_predictions_of_kept_patches():
    torch.manual_seed(0)
    model = mae()
    x = torch.randn(2, 4, 80)
    pred = torch.randn(2, 4, 80)
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    target = model.encoder.patches(x)
    loss = model.forward_loss(target, pred, mask)
    changed = pred.clone()
    changed[0, 1] += 100.0  # kept
    changed[1, 3] -= 100.0  # kept
    assert model.forward_loss(target, changed, mask) == loss
    changed[0, 3] += 1.0  # removed
    assert model.forward_loss(target, changed, mask) > loss
    expected = ((pred - target) ** 2).mean(-1)[mask.bool()].mean()
    assert torch.isclose(loss, expected)


def test_decoder_reassembles_tokens_in_their_original_places():
    torch.manual_seed(0)
    model = mae(mask_ratio=0.25).eval()
    x = torch.randn(2, 4, 80)
    latent, mask, ids_restore = model.forward_encoder(model.encoder.patches(x), 0.25)
    assert latent.shape == (2, 1 + 3, 16)
    seen = []
    model.decoder[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    model.forward_decoder(latent, ids_restore)
    tokens = (seen[0] - model.decoder_pos_embed)[:, 1:]
    embedded = model.decoder_embed(latent[:, 1:])
    for b in range(2):
        for i in range(4):
            # ids_restore[i] is where patch i sits in the shuffled order; the kept patches come first
            expected = model.mask_token[0, 0] if mask[b, i] else embedded[b, ids_restore[b, i]]
            assert torch.allclose(tokens[b, i], expected, atol=1e-6)
    assert mask.sum() == 2


def test_sincos_position_embeddings_are_fixed_and_distinct():
    table = sincos_1d(50, 16)
    assert table.shape == (50, 16)
    assert torch.cdist(table, table).add(torch.eye(50)).min() > 0.1  # no two positions alike
    with pytest.raises(ValueError):
        sincos_1d(4, 15)
    torch.manual_seed(0)
    a = mae()
    torch.manual_seed(1)
    b = mae()
    for model in (a, b):
        assert not model.encoder.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert id(model.encoder.pos_embed) not in trainable and id(model.decoder_pos_embed) not in trainable
        assert torch.equal(model.encoder.pos_embed[0, 0], torch.zeros(16))  # [CLS]
        assert torch.equal(model.encoder.pos_embed[0, 1:], sincos_1d(4, 16))
        assert torch.equal(model.decoder_pos_embed[0, 1:], sincos_1d(4, 8))
    assert not torch.equal(a.encoder.embed.weight, b.encoder.embed.weight)
    assert "pos_embed" in a.encoder.state_dict()  # still saved with the encoder
    before = a.encoder.pos_embed.clone()
    opt = torch.optim.AdamW(parameter_groups(a, 0.05), lr=0.1)
    a(torch.randn(2, 4, 80))[0].backward()
    opt.step()
    assert torch.equal(a.encoder.pos_embed, before)
    with pytest.raises(ValueError):
        Encoder(4, 80, 20, 15, 1, 3, 2.0)


def test_decoder_has_its_own_head_count():
    model = MaskedAutoencoder(encoder(heads=2), decoder_width=8, decoder_depth=2, decoder_heads=4, mask_ratio=0.5)
    assert model.encoder.blocks[0].attn.num_heads == 2
    assert [blk.attn.num_heads for blk in model.decoder] == [4, 4]
    model(torch.randn(2, 4, 80))
    with pytest.raises(ValueError, match="heads"):
        MaskedAutoencoder(encoder(), decoder_width=10, decoder_depth=1, decoder_heads=4, mask_ratio=0.5)


def test_log_power_tokens_span_the_same_time_as_raw_ones():
    e = encoder(bin_size=5)
    assert e.num_patches == 4 and e.token_size == 4
    x = torch.randn(2, 4, 80)
    assert e.patches(x).shape == (2, 4, 4 * 4)
    loud = x.clone()
    loud[..., 20:40] *= 10  # the second patch's amplitude only
    diff = (e.patches(loud) - e.patches(x)).abs().sum(-1)[0]
    assert diff[1] > 0 and diff[0] == diff[2] == diff[3] == 0


def symmetric_info_nce(u, v, scale):
    from bench import plugins
    return plugins.get("objective", "infonce")(F.normalize(u, dim=-1), F.normalize(v, dim=-1), scale)


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


class _Batches:
    """Stands in for train.Batches: `steps` empty batches per epoch on the CPU."""

    def __init__(self, steps: int):
        self.steps, self.device = steps, torch.device("cpu")

    def __len__(self):
        return self.steps

    def epoch(self, epoch):
        return iter([()] * self.steps)


def test_temperature_is_clamped_after_each_step_and_keeps_its_gradient_at_the_bound():
    bound = math.log(MAX_LOGIT_SCALE)
    # A loss that always asks for a larger scale; AdamW's first steps move log_scale by about lr each.
    schedule = Schedule(epochs=1, batch_size=16, lr=1.0, weight_decay=0.0, warmup_epochs=0.0, grad_clip=0.0)
    free, clamped = Temperature(0.011), Temperature(0.011)
    fit(free, lambda batch: -free.scale(), _Batches(3), schedule)
    assert free.log_scale.item() > bound + 1
    fit(clamped, lambda batch: -clamped.scale(), _Batches(3), schedule, after_step=clamped.clamp_)
    assert clamped.log_scale.item() == pytest.approx(bound)
    assert clamped().item() == pytest.approx(1 / MAX_LOGIT_SCALE)
    # The loss still sees the scale move at the bound and beyond it, where a clamp in scale() would zero it.
    torch.manual_seed(0)
    u, v = torch.randn(16, 8), torch.randn(16, 8)
    for t in (clamped, free):
        t.log_scale.grad = None
        symmetric_info_nce(u, v, t.scale()).backward()
        assert t.log_scale.grad.abs() > 1e-4
    low = Temperature(2.0)
    low.clamp_()
    assert low.log_scale.item() == 0.0


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
    # the tds_regression method checks configurations without importing torch, from its own copy of the geometry
    from baselines.tds import TDS_GROUPS
    from bench.methods import tds_regression
    assert (tds_regression.LEFT_CONTEXT, tds_regression.GROUPS) == (TdsFeaturizer.left_context, TDS_GROUPS)


def test_weight_decay_spares_biases_norms_tokens_and_the_temperature():
    from conftest import TINY

    from bench import plugins
    from bench.methods.cpep import aligned
    from cpep.data.emg2pose import Emg2PoseData
    model = aligned(plugins.resolve(TINY), Emg2PoseData)
    groups = parameter_groups(model, 0.05)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.05]
    decay, no_decay = (next(g for g in groups if g["weight_decay"] == wd) for wd in (0.05, 0.0))
    name = {id(p): n for n, p in model.named_parameters()}
    exempt = {name[id(p)] for p in no_decay["params"]}
    decayed = {name[id(p)] for p in decay["params"]}
    assert "temperature.log_scale" in exempt and "emg.cls_token" in exempt and "pose.cls_token" in exempt
    assert "emg.embed.bias" in exempt and "emg.norm.weight" in exempt
    assert "emg.embed.weight" in decayed and "head.net.0.weight" in decayed
    assert "emg.blocks.0.attn.qkv.weight" in decayed
    # fixed position embeddings are trained by no group, even after the alignment unfreezes an encoder
    model.emg.requires_grad_(True)
    assert "emg.pos_embed" not in exempt | decayed and not model.emg.pos_embed.requires_grad
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(exempt | decayed) == sorted(trainable)
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)
    model.pose.requires_grad_(False)
    groups = {g["weight_decay"]: {name[id(p)] for p in g["params"]} for g in parameter_groups(model, 0.05)}
    assert not any(n.startswith("pose.") for names in groups.values() for n in names)


def test_mae_tokens_are_not_decayed():
    model = mae()
    groups = {g["weight_decay"]: g["params"] for g in parameter_groups(model, 0.05)}
    name = {id(p): n for n, p in model.named_parameters()}
    exempt = {name[id(p)] for p in groups[0.0]}
    assert {"mask_token", "encoder.cls_token", "decoder_embed.bias"} <= exempt
    assert "decoder_embed.weight" in {name[id(p)] for p in groups[0.05]}
