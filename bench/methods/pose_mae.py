"""Pose-MAE: the pose encoder after masked-autoencoder pre-training, probed linearly (the upper bound: it reads
the pose the EMG methods have to infer)."""

from bench.plugins import Embeddings, Method as Base, Step


def train(ctx):
    from cpep import pipeline
    return pipeline.pretrain_mae("pose", ctx)


STEP = Step("pose_mae", sections=("encoder", "pose", "mae"), train=train, epochs="mae")


class Method(Base):
    no_zero_shot = "pose input: the zero-shot task queries with EMG"

    def steps(self, cfg):
        return (STEP,)

    def embeddings(self, cfg, data, models):
        from cpep.pipeline import make_encoder
        encoder = make_encoder("pose", cfg, data)
        encoder.load_state_dict(models["pose_mae"])
        return Embeddings(encoder, lp=lambda batch: encoder(batch["pose"]))
