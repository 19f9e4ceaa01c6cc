"""TDS regression, the emg2pose paper's supervised model: a TDS convolutional featurizer with an MLP decoder trained to
regress joint angles; LP reads the mean of its frames (the `emg2pose` variant of the suites)."""

from dataclasses import dataclass

from baselines.config import Supervised
from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import Data, Section, param
from cpep.errors import ConfigError
from cpep.nn.config import EmgTokens

LEFT_CONTEXT = 1790  # samples the TDS featurizer consumes before its first frame (baselines.tds)
GROUPS = 16          # the featurizer's width is viewed as 16 groups


@dataclass(frozen=True)
class Tds(Section):
    section = "tds"
    width: int = param(64, "> 0", f"emg2pose's is 256; 64 keeps the laptop suites small (a multiple of {GROUPS})")
    features: int = param(64, "> 0", "the featurizer's output per frame")
    decoder_hidden: int = param(256, "> 0", "emg2pose's is 512")

    def rules(self):
        if self.width < GROUPS or self.width % GROUPS:
            raise ConfigError(f"tds.width ({self.width}) must be a positive multiple of {GROUPS}")


def model_of(cfg, data):
    from baselines.tds import Emg2PoseRegressor
    d, t = Data.of(cfg), Tds.of(cfg)
    return Emg2PoseRegressor(d.window, d.pose_decimation, t.width, t.features, t.decoder_hidden, data.channels,
                             data.pose_dims)


def build(ctx):
    from baselines.supervised import training
    return training(lambda: model_of(ctx.cfg, ctx.data), EmgTokens.of(ctx.cfg).rotation_augment,
                    ctx.data.selection("pretrain"), ctx.seeds, ctx.device)


STEP = Step("tds_regression", build, schedule="supervised", sections=("emg", "supervised"))


class Method(Base):
    config = (Tds, Supervised, EmgTokens)
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def validate(self, cfg):
        window = Data.of(cfg).window
        if window <= LEFT_CONTEXT:
            raise ConfigError(f"data.window ({window}) must be longer than the TDS featurizer's receptive field "
                              f"({LEFT_CONTEXT} samples) for the tds_regression method")

    def embeddings(self, cfg, data, models):
        model = model_of(cfg, data)
        model.load_state_dict(models["tds_regression"])
        return Embeddings(model, lp=lambda batch: model.embed(batch["emg"]))
