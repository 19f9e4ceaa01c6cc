"""What EMG-MAE and Pose-MAE share: a masked-autoencoder pre-training step per modality, and a method that
probes that encoder linearly. (Files starting with _ are not plug-ins.)"""

from bench.plugins import Embeddings, Method, Step


def _train_emg(ctx):
    from cpep import pretraining
    return pretraining.pretrain_mae("emg", ctx)


def _train_pose(ctx):
    from cpep import pretraining
    return pretraining.pretrain_mae("pose", ctx)


STEPS = {modality: Step(f"{modality}_mae", sections=("encoder", modality, "mae"), train=train, epochs="mae")
         for modality, train in (("emg", _train_emg), ("pose", _train_pose))}


class MaeMethod(Method):
    modality = ""

    def steps(self, cfg):
        return (STEPS[self.modality],)

    def embeddings(self, cfg, data, models):
        from cpep.pretraining import make_encoder
        encoder = make_encoder(self.modality, cfg, data)
        encoder.load_state_dict(models[f"{self.modality}_mae"])
        return Embeddings(encoder, lp=lambda batch: encoder(batch[self.modality]))
