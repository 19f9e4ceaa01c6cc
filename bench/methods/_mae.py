"""What EMG-MAE and Pose-MAE share: a masked-autoencoder pre-training step per modality, and a method that
probes that encoder linearly. (Files starting with _ are not plug-ins.)"""

from bench.plugins import Embeddings, Method, Step
from cpep.config import Data
from cpep.nn.config import MODEL, Embedding, EmgTokens, Mae, PoseTokens, check_tokens

TOKENS = {"emg": EmgTokens, "pose": PoseTokens}


def _training(modality: str, ctx):
    from cpep.pretraining import encoder, mae_training
    rotation = EmgTokens.of(ctx.cfg).rotation_augment if modality == "emg" else 0
    return mae_training(modality, lambda: encoder(modality, ctx.cfg, ctx.data), Mae.of(ctx.cfg), rotation,
                        ctx.data.selection("pretrain"), ctx.seeds, ctx.device)


def _build_emg(ctx):
    return _training("emg", ctx)


def _build_pose(ctx):
    return _training("pose", ctx)


STEPS = {modality: Step(f"{modality}_mae", build, schedule="mae", sections=("encoder", modality, "mae"))
         for modality, build in (("emg", _build_emg), ("pose", _build_pose))}


class MaeMethod(Method):
    modality = ""
    config = MODEL

    @property
    def sections(self):
        return ("encoder", "embedding", self.modality)

    def steps(self, cfg):
        return (STEPS[self.modality],)

    def validate(self, cfg):
        check_tokens(Data.of(cfg), **{self.modality: TOKENS[self.modality].of(cfg)}, mae=Mae.of(cfg))

    def embeddings(self, cfg, data, models):
        from cpep.pretraining import encoder as make
        encoder = make(self.modality, cfg, data, Embedding.of(cfg).pooling)
        encoder.load_state_dict(models[f"{self.modality}_mae"])
        return Embeddings(encoder, lp=lambda batch: encoder(batch[self.modality]))
