"""Linear probe (LP): class-balanced logistic regression on the frozen embeddings of the training users' windows,
balanced accuracy on the held-out users' windows."""

from dataclasses import dataclass

from bench.plugins import Metric as Base
from cpep.config import Section, param


@dataclass(frozen=True)
class Settings(Section):
    section = "linear_probe"
    weight_decay: float = param(1e-3, ">= 0", "L2 on the probe's weights: the paper does not state its probe")
    max_iter: int = param(200, "> 0", "L-BFGS iterations, full batch: converged on the synthetic data")


class Metric(Base):
    needs = "lp"
    keys = ("lp",)
    config = (Settings,)

    def predict(self, train, test, num_classes, cfg, device):
        from cpep.probes import linear_probe_predictions
        s = Settings.of(cfg)
        return {"lp": linear_probe_predictions(*train, test[0], num_classes, s.weight_decay, s.max_iter)}
