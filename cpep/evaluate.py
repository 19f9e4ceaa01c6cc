"""Linear probe and zero-shot evaluation on frozen embeddings, scored by balanced accuracy."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from cpep.data import WindowDataset
from cpep.train import Batches, autocast


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean over the classes present in `target` of the fraction of that class predicted correctly."""
    recalls = [(pred[target == c] == c).float().mean() for c in range(num_classes) if (target == c).any()]
    return float(torch.stack(recalls).mean())


@torch.no_grad()
def embed(fn: Callable[[dict], torch.Tensor], dataset: WindowDataset,
          device: torch.device, batch_size: int = 256, in_memory_bytes: float = 4e9, workers: int = 0):
    """(embeddings, labels) of every window in the dataset's order; fn(batch) -> (B, D)."""
    batches = Batches(dataset, batch_size, device, seed=0, in_memory_bytes=in_memory_bytes, workers=workers)
    out, labels = [], []
    for batch in batches.in_order():
        with autocast(device):
            out.append(fn(batch).float().cpu())
        labels.append(batch["label"].cpu())
    return torch.cat(out), torch.cat(labels)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, weight_decay: float = 1e-3, max_iter: int = 200) -> float:
    """Class-balanced multinomial logistic regression (full-batch L-BFGS) on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    counts = torch.bincount(train_y, minlength=num_classes).float()
    weights = counts.sum() / (num_classes * counts.clamp_min(1))
    linear = torch.nn.Linear(xs.shape[1], num_classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(xs), train_y, weight=weights) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return balanced_accuracy(linear(xt).argmax(1), test_y, num_classes)


def zero_shot(queries: torch.Tensor, references: torch.Tensor, reference_labels: torch.Tensor,
              query_labels: torch.Tensor, num_classes: int, k: int = 10) -> float:
    """Each query takes the majority label of its k nearest references by cosine similarity.

    Ties go to the class whose tied neighbours are most similar in total.
    """
    sims = F.normalize(queries, dim=-1) @ F.normalize(references, dim=-1).T
    top_sim, top_idx = sims.topk(min(k, len(references)), dim=1)
    votes = F.one_hot(reference_labels[top_idx], num_classes).float()  # (Q, k, C)
    count = votes.sum(1)
    tie_break = (votes * top_sim.unsqueeze(-1)).sum(1) / (k + 1) / 2  # in (-0.5, 0.5): never outweighs one vote
    pred = (count + tie_break).argmax(1)
    return balanced_accuracy(pred, query_labels, num_classes)
