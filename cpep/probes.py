"""Linear probe and zero-shot evaluation on frozen embeddings, scored by balanced accuracy."""

from __future__ import annotations

import math
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


# The similarities of QUERY_CHUNK queries with REFERENCE_CHUNK references are one 16 MB float32 block; with fewer
# queries and more references per block than the other way round, fewer running top k are merged.
QUERY_CHUNK, REFERENCE_CHUNK = 256, 16384


def zero_shot(queries: torch.Tensor, references: torch.Tensor, reference_labels: torch.Tensor,
              query_labels: torch.Tensor, num_classes: int, k: int = 10, device: torch.device | str = "cpu",
              query_chunk: int = QUERY_CHUNK, reference_chunk: int = REFERENCE_CHUNK) -> float:
    """Balanced accuracy of zero_shot_predictions."""
    pred = zero_shot_predictions(queries, references, reference_labels, num_classes, k, device, query_chunk,
                                 reference_chunk)
    return balanced_accuracy(pred, query_labels.cpu(), num_classes)


def zero_shot_predictions(queries: torch.Tensor, references: torch.Tensor, reference_labels: torch.Tensor,
                          num_classes: int, k: int = 10, device: torch.device | str = "cpu",
                          query_chunk: int = QUERY_CHUNK, reference_chunk: int = REFERENCE_CHUNK) -> torch.Tensor:
    """Each query takes the majority label of its k nearest references by cosine similarity (see `nearest`).

    Ties in the vote go to the class whose tied neighbours are most similar in total, then to the lower class.
    Blocks of query_chunk x reference_chunk similarities are computed on `device`, so memory does not grow with
    the number of references; the predictions depend neither on the block sizes nor on the device.
    """
    if k > MAX_ZERO_SHOT_K:
        raise ValueError(f"zero-shot k is at most {MAX_ZERO_SHOT_K}, not {k}")
    queries, references = F.normalize(queries.float(), dim=-1), F.normalize(references.float(), dim=-1)
    neighbours = nearest(queries, references, k, device, reference_chunk, query_chunk)
    reference_labels = reference_labels.to(device)
    preds = []
    for top_sim, top_idx in zip(*(part.split(query_chunk) for part in neighbours)):
        votes = F.one_hot(reference_labels[top_idx], num_classes)  # (Q, k, C)
        count = votes.sum(1)
        similarity = (votes * top_sim.unsqueeze(-1)).sum(1)  # exact: integers below 2**63
        similarity = similarity.masked_fill(count < count.max(1, keepdim=True).values, torch.iinfo(torch.long).min)
        preds.append(similarity.argmax(1).cpu())  # the first of equal maxima: the lower class
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def nearest(queries: torch.Tensor, references: torch.Tensor, k: int, device: torch.device | str = "cpu",
            reference_chunk: int = REFERENCE_CHUNK, query_chunk: int = QUERY_CHUNK
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest references of each query, of unit vectors (on any device): (similarities as int64 multiples of
    2**(-2 * GRID_BITS), reference indices), most similar first, equal similarities by lower index.

    The similarities are those of the vectors rounded to a grid (`_grid`), computed exactly. References go to
    `device` reference_chunk at a time, and meet query_chunk queries at a time: a float32 matrix product picks
    every reference of the chunk that can be among a query's k nearest (`_candidates`), only those are scored
    exactly, and a running top k per query is merged with them.
    """
    q = _grid(queries.to(device))
    parts = range(0, len(q), query_chunk)
    top_sim = [torch.empty(len(q[p:p + query_chunk]), 0, dtype=torch.long, device=q.device) for p in parts]
    top_idx = [t.clone() for t in top_sim]
    q64 = q.double()
    margin = 2 * _error_bound(q.shape[1], q.device)
    for start in range(0, len(references), reference_chunk):
        chunk = _grid(references[start:start + reference_chunk].to(device))
        for i, p in enumerate(parts):
            block = q[p:p + query_chunk]
            candidates = _candidates(block, chunk, k, margin)  # ascending indices into the chunk
            sims = torch.cat([top_sim[i], _exact(q64[p:p + query_chunk], chunk, candidates)], 1)
            idx = torch.cat([top_idx[i], candidates + start], 1)
            # Equal similarities are in ascending index order here (the running top k holds lower indices than
            # the chunk, in that order), and a stable sort keeps that order.
            order = sims.sort(dim=1, descending=True, stable=True).indices[:, :k]
            top_sim[i], top_idx[i] = sims.gather(1, order), idx.gather(1, order)
    if not top_sim:
        return (torch.empty(0, 0, dtype=torch.long, device=q.device),) * 2
    return torch.cat(top_sim), torch.cat(top_idx)


def _grid(unit: torch.Tensor) -> torch.Tensor:
    """Unit vectors as integers on a 2**-GRID_BITS grid, held exactly as float32 (their magnitude is at most
    2**GRID_BITS). Every dot product of two of them, and every partial sum of one, is an integer below 2**53
    (Cauchy-Schwarz), so a float64 product gives it exactly whatever its summation order: the same similarities on
    every device and for every block size."""
    return (unit * 2.0 ** GRID_BITS).round_().float()  # exact in float32 or float64: a power of two, then rounding


# The unit roundoff of a float32 matrix product's inputs where torch is set to round them (else 2**-24).
ROUNDOFF = {"tf32": 2.0 ** -11, "bf16": 2.0 ** -8}


def _error_bound(dim: int, device: torch.device) -> float:
    """How far a float32 matrix product of two grid vectors can be from their exact dot product: gamma_d times
    the product of their norms (each at most 2**GRID_BITS + sqrt(d) / 2), for any summation order, with TF32 or
    bf16 inputs where torch is set to allow them; doubled, so that the rounding of a threshold built from it is
    covered too. Infinite where the bound means nothing: every reference is then scored exactly."""
    u = ROUNDOFF.get(_matmul_precision(device), 2.0 ** -24)
    if dim * u >= 0.5:
        return math.inf
    gamma = dim * u / (1 - dim * u)
    return 2 * gamma * (2.0 ** GRID_BITS + math.sqrt(dim) / 2) ** 2


def _matmul_precision(device: torch.device) -> str:
    """How torch is set to compute float32 matrix products on the device's backend: ieee (or none), tf32, bf16."""
    backend = torch.backends.cuda.matmul if device.type == "cuda" else torch.backends.mkldnn.matmul
    return backend.fp32_precision


GROUPS = 256  # groups of similarities per query whose maxima are compared first (torch's topk slows beyond)
SLACK = 8     # groups taken beyond the k with the largest maxima at first: more within the margin are rare
NONE = -1     # no candidate: a row with fewer candidates than others is padded with it


def _candidates(q: torch.Tensor, chunk: torch.Tensor, k: int, margin: float) -> torch.Tensor:
    """(Q, m) indices into `chunk`, ascending after any NONE: for each query, every reference that can be among
    its k nearest in the chunk (and perhaps a few more).

    The float32 similarities are within margin / 2 of the exact ones, so any of the exact k nearest is within
    `margin` of the k-th largest float32 similarity, and so within `margin` of the k-th largest maximum of a group
    of similarities (which is no larger): only the groups whose maximum is that close can hold a candidate, and
    only their members are compared with it."""
    n = len(chunk)
    every = torch.arange(n, device=q.device).expand(len(q), -1)
    groups = max(GROUPS, 4 * (k + SLACK))
    size = n // groups  # group g holds columns g, g + groups, g + 2 groups, ...: a maximum over rows of a view
    if size < 4 or not math.isfinite(margin):  # groups would save little, or the bound means nothing
        return every
    with torch.autocast(q.device.type, enabled=False):
        approx = q @ chunk.T
    grouped = size * groups
    maxima = approx[:, :grouped].unflatten(1, (size, groups)).amax(1)
    top = maxima.topk(k + SLACK, dim=1)
    threshold = top.values[:, k - 1].double() - margin
    # rounded down to float32: every value at or above the threshold compares so
    threshold = torch.nextafter(threshold.float(), torch.tensor(-math.inf, device=q.device)).unsqueeze(1)
    close = int((top.values >= threshold).sum(1).max())
    if close == k + SLACK:  # more groups may be that close than were taken
        close = int((maxima >= threshold).sum(1).max())
        if close > groups // 4:  # many near ties: every reference costs about as much
            return every
        top = maxima.topk(close, dim=1)
    columns = (top.indices[:, :close].unsqueeze(2) + groups * torch.arange(size, device=q.device)).flatten(1)
    columns = torch.cat([columns, every[:, grouped:]], 1)  # the columns left over: always compared
    keep = approx.gather(1, columns) >= threshold
    m = int(keep.sum(1).max())
    slot = torch.where(keep, keep.cumsum(1) - 1, m)  # each candidate's place in its row; m: not a candidate
    picked = torch.full((len(q), m + 1), NONE, device=q.device).scatter_(1, slot, columns)[:, :m]
    return picked.sort(dim=1).values


EXACT_VALUES = 2 ** 23  # float64 values gathered at once for the exact similarities (64 MB)


def _exact(q64: torch.Tensor, chunk: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The exact similarities (int64, in units of 2**(-2 * GRID_BITS)) of each query (float64) with its candidates
    in `chunk` (grid vectors), the smallest int64 for NONE."""
    if candidates.shape[1] == len(chunk):  # every reference, in order
        return (q64 @ chunk.double().T).long()
    m, d = candidates.shape[1], q64.shape[1]
    rows = max(1, EXACT_VALUES // max(1, m * d))
    out = []
    for i in range(0, len(q64), rows):
        part = candidates[i:i + rows]
        picked = chunk.index_select(0, part.clamp(min=0).flatten()).double().view(len(part), m, d)
        sims = torch.bmm(picked, q64[i:i + rows].unsqueeze(2)).squeeze(2).long()
        out.append(sims.masked_fill(part == NONE, torch.iinfo(torch.long).min))
    return torch.cat(out) if out else torch.empty(0, m, dtype=torch.long, device=q64.device)
