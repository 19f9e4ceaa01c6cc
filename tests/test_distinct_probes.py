"""No two variants' linear probes read the same thing by construction: each variant's LP embedding of the test
windows differs from every other's. A variant whose probe reads a part that its training never changes (the EMG
encoder of the frozen-encoder ablation is EMG-MAE's, unchanged) would repeat another row of the table."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import tiny_args
from test_cli import cli, records

from bench import plugins
from bench.run.store import Store
from cpep.probes import embed

SUITE = """\
description = "the ablations and EMG-MAE"
seeds = [0]
include = ["ablations"]

[[variants]]
name = "emg_mae"
method = "emg_mae"
label = "EMG-MAE"
"""


@pytest.fixture(scope="module")
def lp_embeddings(tmp_path_factory, make_results) -> dict[str, torch.Tensor]:
    """Each variant's LP embedding of the in-distribution test windows, from its trained stages (seed 0)."""
    results = make_results(tmp_path_factory.mktemp("distinct"))
    suite = tmp_path_factory.mktemp("suite") / "ablations_and_emg_mae.toml"
    suite.write_text(SUITE)
    cli("run", "--suite", suite, "--runs-dir", results, *tiny_args())
    store = Store(results)
    out = {}
    for name, rec in records(results).items():
        assert rec["status"] == "done", (name, rec["error"])
        cfg = rec["config"]
        models = {s["kind"]: store.load_model(s["kind"], s["key"]) for s in rec["stages"] if s["kind"] != "eval"}
        data = plugins.get("dataset", cfg["data"]["name"]).open(cfg, store)
        emb = plugins.get("method", rec["method"]).embeddings(cfg, data, models)
        emb.model.eval()
        out[rec["variant"]], _ = embed(emb.lp, data.selection("id_test"), torch.device("cpu"))
    return out


def test_no_two_variants_probe_identical_embeddings(lp_embeddings):
    assert {"emg_mae", "frozen_emg", "cpep"} <= set(lp_embeddings)
    identical = [(a, b) for (a, x), (b, y) in itertools.combinations(sorted(lp_embeddings.items()), 2)
                 if x.shape == y.shape and torch.equal(x, y)]
    assert identical == []

