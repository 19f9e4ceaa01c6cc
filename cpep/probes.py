"""Linear probe and zero-shot evaluation on frozen embeddings, scored by balanced accuracy."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from cpep.config import MAX_ZERO_SHOT_K
from cpep.data.windows import WindowDataset
from cpep.nn.train import Batches, autocast

GRID_BITS = 24  # zero-shot similarities are exact multiples of 2**-48 (see _grid)


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
    """Balanced accuracy of linear_probe_predictions."""
    pred = linear_probe_predictions(train_x, train_y, test_x, num_classes, weight_decay, max_iter)
    return balanced_accuracy(pred, test_y, num_classes)


def linear_probe_predictions(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, num_classes: int,
                             weight_decay: float = 1e-3, max_iter: int = 200) -> torch.Tensor:
    """The class of each test window by class-balanced multinomial logistic regression (full-batch L-BFGS) on
    standardised features."""
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
        return linear(xt).argmax(1)


def zero_shot(queries: torch.Tensor, references: torch.Tensor, reference_labels: torch.Tensor,
              query_labels: torch.Tensor, num_classes: int, k: int = 10, device: torch.device | str = "cpu",
              query_chunk: int = 512, reference_chunk: int = 8192) -> float:
    """Balanced accuracy of zero_shot_predictions."""
    pred = zero_shot_predictions(queries, references, reference_labels, num_classes, k, device, query_chunk,
                                 reference_chunk)
    return balanced_accuracy(pred, query_labels.cpu(), num_classes)


def zero_shot_predictions(queries: torch.Tensor, references: torch.Tensor, reference_labels: torch.Tensor,
                          num_classes: int, k: int = 10, device: torch.device | str = "cpu", query_chunk: int = 512,
                          reference_chunk: int = 8192) -> torch.Tensor:
    """Each query takes the majority label of its k nearest references by cosine similarity (see `nearest`).

    Ties in the vote go to the class whose tied neighbours are most similar in total, then to the lower class.
    Blocks of query_chunk x reference_chunk similarities are computed on `device`, so memory does not grow with
    the number of references; the predictions depend neither on the block sizes nor on the device.
    """
    if k > MAX_ZERO_SHOT_K:
        raise ValueError(f"zero-shot k is at most {MAX_ZERO_SHOT_K}, not {k}")
    queries, references = F.normalize(queries.float(), dim=-1), F.normalize(references.float(), dim=-1)
    reference_labels = reference_labels.to(device)
    preds = []
    for start in range(0, len(queries), query_chunk):
        top_sim, top_idx = nearest(queries[start:start + query_chunk], references, k, device, reference_chunk)
        votes = F.one_hot(reference_labels[top_idx], num_classes)  # (Q, k, C)
        count = votes.sum(1)
        similarity = (votes * top_sim.unsqueeze(-1)).sum(1)  # exact: integers below 2**63
        similarity = similarity.masked_fill(count < count.max(1, keepdim=True).values, torch.iinfo(torch.long).min)
        preds.append(similarity.argmax(1).cpu())  # the first of equal maxima: the lower class
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def nearest(queries: torch.Tensor, references: torch.Tensor, k: int, device: torch.device | str = "cpu",
            reference_chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest references of each query, of unit vectors (on any device): (similarities as int64 multiples of
    2**(-2 * GRID_BITS), reference indices), most similar first, equal similarities by lower index.

    References go to `device` reference_chunk at a time; a running top k per query is merged with each chunk.
    """
    q = _grid(queries.to(device))
    top_sim = torch.empty(len(q), 0, dtype=torch.float64, device=device)
    top_idx = torch.empty(len(q), 0, dtype=torch.long, device=device)
    for start in range(0, len(references), reference_chunk):
        chunk = _grid(references[start:start + reference_chunk].to(device))
        sims = torch.cat([top_sim, q @ chunk.T], 1)
        idx = torch.cat([top_idx, torch.arange(start, start + len(chunk), device=device).expand(len(q), -1)], 1)
        # Equal similarities are in ascending index order here (the running top k holds lower indices than the
        # chunk, in that order), and a stable sort keeps that order.
        order = sims.sort(dim=1, descending=True, stable=True).indices[:, :k]
        top_sim, top_idx = sims.gather(1, order), idx.gather(1, order)
    return top_sim.long(), top_idx


def _grid(unit: torch.Tensor) -> torch.Tensor:
    """Unit vectors as float64 integers on a 2**-GRID_BITS grid. Every dot product of two of them, and every partial
    sum of one, is an integer below 2**53 (Cauchy-Schwarz), so a float64 matrix product gives it exactly whatever
    its summation order: the same similarities on every device and for every block size."""
    return torch.round(unit.double() * 2.0 ** GRID_BITS)
