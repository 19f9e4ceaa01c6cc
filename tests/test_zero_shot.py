"""Zero-shot by blocks: the same neighbours and predictions for every block size and device, with a defined order
for equal similarities, as the exact similarities of every pair give; the evaluation stage embeds each selection
once per embedding function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench import plugins
from bench.plugins import Embeddings, Method
from bench.run.evaluation import evaluate
from cpep import probes as zs
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.errors import ConfigError


def exact_reference(queries, references, labels, num_classes, k):
    """The definition, one query at a time in Python integers: neighbours by similarity then lower index; the vote
    by count, then summed similarity, then lower class."""
    q = torch.round(F.normalize(queries, dim=-1).double() * 2.0 ** zs.GRID_BITS).long().tolist()
    r = torch.round(F.normalize(references, dim=-1).double() * 2.0 ** zs.GRID_BITS).long().tolist()
    neighbours, preds = [], []
    for row in q:
        sims = [sum(a * b for a, b in zip(row, ref)) for ref in r]
        top = sorted(range(len(r)), key=lambda j: (-sims[j], j))[:k]
        neighbours.append(top)
        count, total = [0] * num_classes, [0] * num_classes
        for j in top:
            count[int(labels[j])] += 1
            total[int(labels[j])] += sims[j]
        preds.append(max(range(num_classes), key=lambda c: (count[c], total[c], -c)))
    return torch.tensor(neighbours), torch.tensor(preds)


def data_with_ties(seed=0, n_queries=23, n_refs=41, dim=6, num_classes=3):
    g = torch.Generator().manual_seed(seed)
    refs = torch.randn(n_refs, dim, generator=g)
    refs[20:26] = refs[3]          # exact ties: copies of one reference, spread over several chunks
    refs[30] = 2.0 * refs[7]       # the same direction: the same cosine similarity, bit for bit
    labels = torch.randint(0, num_classes, (n_refs,), generator=g)
    labels[20:23] = (labels[3] + 1) % num_classes  # the copies disagree, so the order among them decides votes
    queries = torch.randn(n_queries, dim, generator=g)
    queries[:4] = refs[3] + 0.01 * torch.randn(4, dim, generator=g)  # queries whose neighbours are those copies
    queries[4] = refs[7]
    return queries, refs, labels, num_classes


@pytest.mark.parametrize("k", [1, 4, 9, 41, 60])
def test_blocks_of_any_size_give_the_exact_neighbours_and_votes(k):
    queries, refs, labels, c = data_with_ties()
    want_neighbours, want_preds = exact_reference(queries, refs, labels, c, k)
    unit_q, unit_r = F.normalize(queries, dim=-1), F.normalize(refs, dim=-1)
    for reference_chunk in (1, 2, 5, 8, 40, 41, 1000):  # most divide neither count; most are smaller than k
        sims, idx = zs.nearest(unit_q, unit_r, k, reference_chunk=reference_chunk)
        assert torch.equal(idx, want_neighbours[:, :min(k, len(refs))]), reference_chunk
        assert (sims[:, :-1] >= sims[:, 1:]).all()
        for query_chunk in (1, 3, 23, 64):
            preds = zs.zero_shot_predictions(queries, refs, labels, c, k, query_chunk=query_chunk,
                                             reference_chunk=reference_chunk)
            assert torch.equal(preds, want_preds), (query_chunk, reference_chunk)


def test_equal_similarities_are_ordered_by_lower_reference_index():
    queries, refs, labels, c = data_with_ties()
    _, idx = zs.nearest(F.normalize(queries[:1], dim=-1), F.normalize(refs, dim=-1), 7, reference_chunk=3)
    assert idx[0].tolist() == [3, 20, 21, 22, 23, 24, 25]  # reference 3 and its six copies, in index order
    _, idx = zs.nearest(F.normalize(queries[4:5], dim=-1), F.normalize(refs, dim=-1), 2, reference_chunk=4)
    assert idx[0].tolist() == [7, 30]


def test_it_predicts_what_the_float_similarity_matrix_predicts_without_ties():
    g = torch.Generator().manual_seed(1)
    queries, refs = torch.randn(150, 16, generator=g), torch.randn(400, 16, generator=g)
    labels = torch.randint(0, 5, (400,), generator=g)
    sims = F.normalize(queries, dim=-1) @ F.normalize(refs, dim=-1).T  # the whole matrix, float32
    top_sim, top_idx = sims.topk(10, dim=1)
    votes = F.one_hot(labels[top_idx], 5).float()
    want = (votes.sum(1) + (votes * top_sim.unsqueeze(-1)).sum(1) / 22).argmax(1)
    got = zs.zero_shot_predictions(queries, refs, labels, 5, 10, query_chunk=64, reference_chunk=96)
    assert torch.equal(got, want)
    assert zs.zero_shot(queries, refs, labels, labels[:150], 5, 10) == zs.balanced_accuracy(want, labels[:150], 5)


def every_pair_nearest(queries, references, k, reference_chunk=8192):
    """The neighbours as the exact similarity of every pair gives them: each chunk's whole float64 product of grid
    vectors, merged by a stable sort (how zero-shot found them before it picked candidates by a float32 product)."""
    q = zs._grid(queries).double()
    top_sim = torch.empty(len(q), 0, dtype=torch.float64)
    top_idx = torch.empty(len(q), 0, dtype=torch.long)
    for start in range(0, len(references), reference_chunk):
        chunk = zs._grid(references[start:start + reference_chunk]).double()
        sims = torch.cat([top_sim, q @ chunk.T], 1)
        idx = torch.cat([top_idx, torch.arange(start, start + len(chunk)).expand(len(q), -1)], 1)
        order = sims.sort(dim=1, descending=True, stable=True).indices[:, :k]
        top_sim, top_idx = sims.gather(1, order), idx.gather(1, order)
    return top_sim.long(), top_idx


def every_pair_predictions(queries, references, labels, num_classes, k):
    sims, idx = every_pair_nearest(F.normalize(queries, dim=-1), F.normalize(references, dim=-1), k)
    votes = F.one_hot(labels[idx], num_classes)
    count, total = votes.sum(1), (votes * sims.unsqueeze(-1)).sum(1)
    return total.masked_fill(count < count.max(1, keepdim=True).values, torch.iinfo(torch.long).min).argmax(1)


def ties_and_near_ties(seed, n_refs, dim, copies, near, num_classes=4):
    """References with exact ties (copies, and a scaled copy, which has the same cosine similarity bit for bit) and
    near ties (`near` references within a few grid steps of one, closer than float32 similarities can tell apart),
    and queries whose nearest neighbours are among them."""
    g = torch.Generator().manual_seed(seed)
    refs = torch.randn(n_refs, dim, generator=g)
    refs[n_refs // 2:n_refs // 2 + copies] = refs[:copies]
    refs[-1] = 3.0 * refs[5]
    refs[40:40 + near] = F.normalize(refs[9], dim=0) + 1e-7 * torch.randn(near, dim, generator=g)
    labels = torch.randint(0, num_classes, (n_refs,), generator=g)
    queries = torch.randn(300, dim, generator=g)
    queries[:40] = refs[9] + 1e-3 * torch.randn(40, dim, generator=g)
    queries[40:60] = refs[3] + 1e-3 * torch.randn(20, dim, generator=g)
    queries[60] = refs[5]
    return queries, refs, labels, num_classes


@pytest.mark.parametrize("dim, near", [(6, 3), (64, 12), (64, 200), (128, 1500)])
def test_candidates_from_a_float32_product_give_the_neighbours_and_votes_of_every_pair(dim, near, monkeypatch):
    """Few near ties, more than the first guess of candidates, and so many that whole chunks are scored exactly;
    chunks smaller and larger than the groups of candidates, dividing the references or not."""
    queries, refs, labels, c = ties_and_near_ties(0, 6000, dim, copies=300, near=near)
    unit_q, unit_r = F.normalize(queries, dim=-1), F.normalize(refs, dim=-1)
    widths = []  # per chunk: how many of its references were scored exactly, and how many it had
    exact = zs._exact
    monkeypatch.setattr(zs, "_exact", lambda q, chunk, cand: widths.append((cand.shape[1], len(chunk))) or
                        exact(q, chunk, cand))
    for k in (1, 10, 37):
        want_sims, want_idx = every_pair_nearest(unit_q, unit_r, k)
        want = every_pair_predictions(queries, refs, labels, c, k)
        for reference_chunk, query_chunk in ((500, 300), (4096, 64), (6000, 300)):
            sims, idx = zs.nearest(unit_q, unit_r, k, reference_chunk=reference_chunk, query_chunk=query_chunk)
            assert torch.equal(idx, want_idx) and torch.equal(sims, want_sims), (k, reference_chunk, query_chunk)
            got = zs.zero_shot_predictions(queries, refs, labels, c, k, query_chunk=query_chunk,
                                           reference_chunk=reference_chunk)
            assert torch.equal(got, want), (k, reference_chunk, query_chunk)
    assert any(m < n for m, n in widths), "candidates were picked in some chunks"
    assert any(m == n for m, n in widths), "every reference was scored in others"


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_products_rounded_more_coarsely_widen_the_margin_and_change_nothing(precision, monkeypatch):
    queries, refs, labels, c = ties_and_near_ties(1, 5000, 32, copies=100, near=5)
    want = every_pair_predictions(queries, refs, labels, c, 10)
    ieee = zs._error_bound(32, torch.device("cpu"))
    monkeypatch.setattr(zs, "_matmul_precision", lambda device: precision)
    assert zs._error_bound(32, torch.device("cpu")) > 1000 * ieee
    assert torch.equal(zs.zero_shot_predictions(queries, refs, labels, c, 10), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_device_gives_the_same_neighbours_and_predictions_as_the_cpu():
    g = torch.Generator().manual_seed(2)
    queries, refs = torch.randn(700, 32, generator=g), torch.randn(5000, 32, generator=g)
    refs[4000:4100] = refs[:100]
    labels = torch.randint(0, 8, (5000,), generator=g)
    unit_q, unit_r = F.normalize(queries, dim=-1), F.normalize(refs, dim=-1)
    cpu = zs.nearest(unit_q, unit_r, 25, "cpu", reference_chunk=5000)
    cuda = zs.nearest(unit_q, unit_r, 25, "cuda", reference_chunk=777)
    assert torch.equal(cpu[0], cuda[0].cpu()) and torch.equal(cpu[1], cuda[1].cpu())
    assert torch.equal(zs.zero_shot_predictions(queries, refs, labels, 8, 25, "cpu"),
                       zs.zero_shot_predictions(queries, refs, labels, 8, 25, "cuda", 100, 999))


def test_k_beyond_what_an_int64_vote_holds_is_refused_before_work():
    with pytest.raises(ConfigError, match="zero_shot.k must be > 0, <= 16384, not 16385"):
        plugins.resolve({"zero_shot.k": 16385})


class SharedFunctions(Method):
    """A method whose LP and zero-shot reference embeddings are one function."""

    def __init__(self):
        self.windows: dict[str, int] = {"reference": 0, "query": 0}

    def embeddings(self, cfg, data, models):
        def reference(batch):
            self.windows["reference"] += len(batch["pose"])
            return batch["pose"].mean(-1)[:, :16]

        def query(batch):
            self.windows["query"] += len(batch["emg"])
            return batch["emg"].pow(2).mean(-1)
        return Embeddings(torch.nn.Identity(), lp=reference, zs_query=query, zs_reference=reference)


def test_each_selection_is_embedded_once_per_function(tiny_data, tiny_config, monkeypatch):
    monkeypatch.setenv(plugins.ENV, str(plugins.BUILT_IN.parent / "tests" / "plugins"))
    cfg = {**tiny_config, "eval": {**tiny_config["eval"],
                                   "metrics": ["linear_probe", "zero_shot", "nearest_centroid"]}}
    data = open_data(Data.of(cfg), tiny_data)
    windows = {name: len(data.selection(name)) for name in ("id_train", "id_test", "unseen_train", "unseen_test")}
    selected = []
    original = data.selection
    monkeypatch.setattr(data, "selection", lambda name: selected.append(name) or original(name))
    method = SharedFunctions()
    values, _, _ = evaluate(cfg, data, torch.device("cpu"), method, {})
    assert set(values) == {f"{m}_{kind}" for m in ("lp", "zs", "centroid") for kind in ("id", "unseen")}
    # Three metrics read the train sides through one function: one embedding each. The test sides are read by
    # two functions (LP and the EMG queries): two embeddings each.
    assert sorted(selected) == sorted(["id_train", "id_test", "id_test", "unseen_train", "unseen_test",
                                       "unseen_test"])
    assert method.windows == {"reference": sum(windows.values()),
                              "query": windows["id_test"] + windows["unseen_test"]}
