"""Floor: a linear probe on EMG log-power features (cpep.features.emg_log_power), the classic amplitude features
of EMG gesture recognition. Nothing is trained: the method has no training stage, and its evaluation computes the
features of each window, so the linear probe is the only thing fitted. A learned EMG method should beat it."""

from bench.plugins import Embeddings, Method as Base


class Method(Base):
    no_zero_shot = "no pose-aligned EMG embedding"

    def steps(self, cfg):
        return ()

    def embeddings(self, cfg, data, models):
        import torch
        from cpep.features import emg_log_power
        return Embeddings(torch.nn.Module(), lp=lambda batch: emg_log_power(batch["emg"]))
