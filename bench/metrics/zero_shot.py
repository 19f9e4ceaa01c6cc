"""Zero-shot (ZS): each held-out user's EMG query takes the majority label of its k nearest pose embeddings of
labelled training-user windows (cosine); balanced accuracy. Computed in blocks on the stage's device."""

from bench.plugins import Metric as Base


class Metric(Base):
    needs = "zs"
    keys = ("zs",)

    def compute(self, train, test, num_classes, cfg, device):
        from cpep.evaluate import zero_shot
        (references, reference_labels), (queries, query_labels) = train, test
        return {"zs": zero_shot(queries, references, reference_labels, query_labels, num_classes, cfg["eval"]["k"],
                                device)}
