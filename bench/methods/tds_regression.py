"""TDS regression, the emg2pose paper's supervised model: a TDS convolutional featurizer with an MLP decoder trained to
regress joint angles; LP reads the mean of its frames (the `emg2pose` variant of the suites)."""

from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import check_bounds
from cpep.errors import ConfigError

LEFT_CONTEXT = 1790  # samples the TDS featurizer consumes before its first frame (baselines.tds)
GROUPS = 16          # the featurizer's width is viewed as 16 groups


def build(cfg, data):
    from baselines.tds import Emg2PoseRegressor
    d, t = cfg["data"], cfg["tds"]
    return Emg2PoseRegressor(d["window"], d["pose_decimation"], t["width"], t["features"], t["decoder_hidden"],
                             data.channels, data.pose_dims)


def train(ctx):
    from baselines import supervised
    return supervised.train(lambda: build(ctx.cfg, ctx.data), ctx)


STEP = Step("tds_regression", sections=("emg", "tds", "supervised"), train=train, epochs="supervised")


class Method(Base):
    defaults = {"tds": {"width": 64, "features": 64, "decoder_hidden": 256}}  # emg2pose: width 256, hidden 512
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def validate(self, cfg):
        t, window = cfg["tds"], cfg["data"]["window"]
        check_bounds(cfg, {"tds.features": "> 0", "tds.decoder_hidden": "> 0"})
        if t["width"] < GROUPS or t["width"] % GROUPS:
            raise ConfigError(f"tds.width ({t['width']}) must be a positive multiple of {GROUPS}")
        if window <= LEFT_CONTEXT:
            raise ConfigError(f"data.window ({window}) must be longer than the TDS featurizer's receptive field "
                              f"({LEFT_CONTEXT} samples) for the tds_regression method")

    def embeddings(self, cfg, data, models):
        model = build(cfg, data)
        model.load_state_dict(models["tds_regression"])
        return Embeddings(model, lp=lambda batch: model.embed(batch["emg"]))
