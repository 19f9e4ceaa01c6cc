"""Zero-shot (ZS): each held-out user's EMG query takes the majority label of its k nearest pose embeddings of
labelled training-user windows (cosine); balanced accuracy. Computed in blocks on the stage's device."""

from bench.plugins import Metric as Base


class Metric(Base):
    needs = "zs"
    keys = ("zs",)

    def predict(self, train, test, num_classes, cfg, device):
        from cpep.probes import zero_shot_predictions
        (references, reference_labels), (queries, _) = train, test
        return {"zs": zero_shot_predictions(queries, references, reference_labels, num_classes, cfg["eval"]["k"],
                                            device)}
