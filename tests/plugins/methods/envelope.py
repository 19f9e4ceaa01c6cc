"""A method added as one file: the mean log-power of each EMG channel, standardised with statistics of the
pre-training windows. No gradient training (a `compute` stage); LP reads the standardised envelope."""

from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base


def envelope(emg):
    import torch
    return torch.log(emg.float().pow(2).mean(-1) + 1e-4)


def statistics(ctx):
    import torch

    from cpep.nn.train import Batches
    feats = torch.cat([envelope(b["emg"]) for b in Batches(ctx.data.selection("pretrain"), 64, ctx.device,
                                                           ctx.seed).in_order()])
    if ctx.on_epoch:
        ctx.on_epoch(1, {})
    return {"mean": feats.mean(0).cpu(), "std": feats.std(0).clamp_min(1e-6).cpu()}, [{"epoch": 1, "loss": 0.0}]


STEP = Step("envelope", compute=statistics)


class Method(Base):
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def embeddings(self, cfg, data, models):
        import torch
        stats = models["envelope"]
        model = torch.nn.Module()
        model.register_buffer("mean", stats["mean"])
        model.register_buffer("std", stats["std"])
        return Embeddings(model, lp=lambda batch: (envelope(batch["emg"]) - model.mean) / model.std)
