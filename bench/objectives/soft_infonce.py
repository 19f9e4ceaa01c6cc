"""Symmetric InfoNCE with soft targets: near-identical poses in a batch are not negatives of each other.

Row i's target is softmax_j(c_i . c_j / soft_infonce.target_temperature) over the batch, where c are the pose embeddings
centred on the batch mean and l2-normalised (detached: targets, never trained through), instead of one-hot on i.
A window whose pose equals another's splits its target between both, so matching either costs nothing more;
poses far from every other in the batch give targets close to one-hot, and then the loss is close to InfoNCE's.
Both directions (EMG -> pose, pose -> EMG) use the same targets, as the similarities are symmetric.

Why centred: a Pose-MAE's embeddings share a dominant direction. On the earlier synthetic data (one gesture per
stage; the ablations suite's Pose-MAE, seed 0, its 978 pre-training windows) the median cosine similarity of two different windows is
0.95, so raw similarities at this temperature leave a window 4 % of its own target in batches of 256; centred,
83 %.
"""

from dataclasses import dataclass

from bench.plugins import Objective as Base
from cpep.config import param
from cpep.nn.config import Contrastive


@dataclass(frozen=True)
class Settings(Contrastive):
    section = "soft_infonce"
    target_temperature: float = param(0.02, "> 0", "how close two poses must be to share a target: as sharp as "
                                                   "the logits start (CPEP's starting temperature)")


class Objective(Base):
    config = (Settings,)

    def targets(self, v):
        """(B, B), rows summing to 1: how much each pose of the batch counts as window i's match."""
        import torch.nn.functional as F
        v = v.detach()
        c = F.normalize(v - v.mean(0), dim=-1)
        return F.softmax(c @ c.T / self.options.target_temperature, dim=1)

    def forward(self, u, v, logit_scale, logit_bias=None):
        import torch.nn.functional as F
        logits = logit_scale * u @ v.T
        if logit_bias is not None:
            logits = logits + logit_bias
        target = self.targets(v)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
