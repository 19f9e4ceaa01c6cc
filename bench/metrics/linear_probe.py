"""Linear probe (LP): class-balanced logistic regression on the frozen embeddings of the training users' windows,
balanced accuracy on the held-out users' windows."""

from bench.plugins import Metric as Base


class Metric(Base):
    needs = "lp"
    keys = ("lp",)

    def predict(self, train, test, num_classes, cfg, device):
        from cpep.probes import linear_probe_predictions
        e = cfg["eval"]
        return {"lp": linear_probe_predictions(*train, test[0], num_classes, e["lp_weight_decay"], e["lp_max_iter"])}
