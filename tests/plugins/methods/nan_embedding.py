"""A method whose embedding is NaN in one of its dimensions, for the test that no score is computed from NaN."""

from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base


def train(ctx):
    import torch
    if ctx.on_epoch:
        ctx.on_epoch(1, {})
    return {"unused": torch.zeros(1)}, [{"epoch": 1, "loss": 0.0}]


def embed(batch):
    x = batch["emg"].float().pow(2).mean(-1)
    x[:, 0] = float("nan")
    return x


class Method(Base):
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (Step("nan_embedding", compute=train),)

    def embeddings(self, cfg, data, models):
        import torch
        return Embeddings(torch.nn.Module(), lp=embed)
