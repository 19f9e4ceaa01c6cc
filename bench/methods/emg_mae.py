"""EMG-MAE: the EMG encoder after masked-autoencoder pre-training, probed linearly."""

from bench.plugins import Embeddings, Method as Base, Step


def train(ctx):
    from cpep import pipeline
    return pipeline.pretrain_mae("emg", ctx)


STEP = Step("emg_mae", sections=("encoder", "emg", "mae"), train=train, epochs="mae")


class Method(Base):
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return (STEP,)

    def embeddings(self, cfg, data, models):
        from cpep.pipeline import make_encoder
        encoder = make_encoder("emg", cfg, data)
        encoder.load_state_dict(models["emg_mae"])
        return Embeddings(encoder, lp=lambda batch: encoder(batch["emg"]))
