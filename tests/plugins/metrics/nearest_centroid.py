"""A metric added as one file: each test embedding takes the class of the nearest training-class centroid
(cosine); balanced accuracy."""

from bench.plugins import Metric as Base


class Metric(Base):
    needs = "lp"
    keys = ("centroid",)

    def compute(self, train, test, num_classes, cfg, device):
        import torch
        import torch.nn.functional as F

        from cpep.probes import balanced_accuracy
        (x, y), (xt, yt) = train, test
        centroids = torch.stack([F.normalize(x[y == c], dim=-1).mean(0) for c in range(num_classes)])
        pred = (F.normalize(xt, dim=-1) @ F.normalize(centroids, dim=-1).T).argmax(1)
        return {"centroid": balanced_accuracy(pred, yt, num_classes)}
