"""PoseT: CPEP's Transformer EMG encoder trained from scratch, with supervision, to regress hand pose; LP reads
its pooled embedding."""

from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base


def build(cfg, data):
    from baselines.poset import PoseTransformer
    from cpep.pretraining import make_encoder
    return PoseTransformer(make_encoder("emg", cfg, data), data.pose_dims)


def train(ctx):
    from baselines import supervised
    return supervised.train(lambda: build(ctx.cfg, ctx.data), ctx)


STEP = Step("poset", sections=("encoder", "embedding", "emg", "supervised"), train=train, epochs="supervised")


class Method(Base):
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def embeddings(self, cfg, data, models):
        model = build(cfg, data)
        model.load_state_dict(models["poset"])
        return Embeddings(model, lp=lambda batch: model.embed(batch["emg"]))
