"""Zero-shot (ZS): each held-out user's EMG query takes the majority label of its k nearest pose embeddings of
labelled training-user windows (cosine); balanced accuracy. Computed in blocks on the stage's device."""

from dataclasses import dataclass

from bench.plugins import Metric as Base
from cpep.config import MAX_ZERO_SHOT_K, Section, param


@dataclass(frozen=True)
class Settings(Section):
    section = "zero_shot"
    k: int = param(10, f"> 0, <= {MAX_ZERO_SHOT_K}", "the paper's k = 10 nearest pose references")


class Metric(Base):
    needs = "zs"
    keys = ("zs",)
    config = (Settings,)

    def predict(self, train, test, num_classes, cfg, device):
        from cpep.probes import zero_shot_predictions
        (references, reference_labels), (queries, _) = train, test
        return {"zs": zero_shot_predictions(queries, references, reference_labels, num_classes, Settings.of(cfg).k,
                                            device)}
