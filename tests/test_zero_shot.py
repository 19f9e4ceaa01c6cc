"""Zero-shot by blocks: the same neighbours and predictions for every block size and device, with a defined order
for equal similarities; the evaluation stage embeds each selection once per embedding function."""

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
