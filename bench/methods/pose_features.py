"""Ceiling: a linear probe on summary features of the pose (cpep.features.pose_summary), the input the EMG methods
have to infer. Nothing is trained: the method has no training stage, and its evaluation computes the features of
each window, so the linear probe is the only thing fitted."""

from bench.plugins import Embeddings, Method as Base


class Method(Base):
    no_zero_shot = "pose input: the zero-shot task queries with EMG"

    def steps(self, cfg):
        return ()

    def embeddings(self, cfg, data, models):
        import torch
        from cpep.features import pose_summary
        return Embeddings(torch.nn.Module(), lp=lambda batch: pose_summary(batch["pose"]))
