"""PoseT: CPEP's Transformer EMG encoder trained from scratch, with supervision, to regress hand pose; LP reads
its pooled embedding."""

from baselines.config import Supervised
from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import Data
from cpep.nn.config import MODEL, Embedding, EmgTokens, check_tokens


def model_of(cfg, data):
    from baselines.poset import PoseTransformer
    from cpep.pretraining import encoder
    return PoseTransformer(encoder("emg", cfg, data, Embedding.of(cfg).pooling), data.pose_dims)


def build(ctx):
    from baselines.supervised import training
    return training(lambda: model_of(ctx.cfg, ctx.data), EmgTokens.of(ctx.cfg).rotation_augment,
                    ctx.data.selection("pretrain"), ctx.seeds, ctx.device)


SECTIONS = ("encoder", "embedding", "emg")
STEP = Step("poset", build, schedule="supervised", sections=SECTIONS + ("supervised",))


class Method(Base):
    config = MODEL + (Supervised,)
    sections = SECTIONS
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def validate(self, cfg):
        check_tokens(Data.of(cfg), EmgTokens.of(cfg))

    def embeddings(self, cfg, data, models):
        model = model_of(cfg, data)
        model.load_state_dict(models["poset"])
        return Embeddings(model, lp=lambda batch: model.embed(batch["emg"]))
