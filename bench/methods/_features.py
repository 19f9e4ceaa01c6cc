"""What the floor and the ceiling share: a method that trains nothing and probes a feature of the window computed
without learning (cpep.features), so the linear probe is the only thing fitted. (Files starting with _ are not
plug-ins.)"""

from bench.plugins import Embeddings, Method


class FeatureMethod(Method):
    field = ""    # the batch entry the feature reads: "emg" or "pose"
    feature = ""  # its function in cpep.features

    def steps(self, cfg):
        return ()

    def embeddings(self, cfg, data, models):
        import torch

        from cpep import features
        compute = getattr(features, self.feature)
        return Embeddings(torch.nn.Module(), lp=lambda batch: compute(batch[self.field]))
