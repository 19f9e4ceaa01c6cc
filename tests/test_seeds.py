"""Independent seeds: model initialisation, data order and data, each the run seed unless `seeds.*` sets it, so
that one source can vary while the others stay fixed."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY

from bench import plugins
from bench.run.planner import plan
from bench.suites import load as load_suite
from cpep import config, pretraining
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.errors import ConfigError
from cpep.nn import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tiny_data):
    return open_data(Data.of(plugins.resolve(TINY)), tiny_data)


def start(windows_of, run_seed: int = 0, **seeds) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """What a training stage starts from: the initial weights, the windows' order in epoch 1, and the global
    RNG's next draws (which masks and augmentations take)."""
    cfg = plugins.resolve(TINY, {f"seeds.{k}": v for k, v in seeds.items()})
    seeds = config.seeds(cfg, run_seed)
    model = pretraining.initialised(seeds, lambda: pretraining.encoder("emg", cfg, windows_of))
    draws = torch.rand(8)
    batches = train.Batches(windows_of.selection("pretrain"), 8, CPU, seeds.order)
    order = torch.cat([batch["index"] for batch in batches.epoch(1)])
    return model.state_dict(), order, draws


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_varying_the_order_seed_keeps_the_initial_weights(data):
    weights, order, draws = start(data, init=0, order=0, data=0)
    weights2, order2, draws2 = start(data, init=0, order=1, data=0)
    assert same_weights(weights, weights2)
    assert not torch.equal(order, order2) and sorted(order.tolist()) == sorted(order2.tolist())
    assert not torch.equal(draws, draws2)


def test_varying_the_init_seed_keeps_the_order(data):
    weights, order, draws = start(data, init=0, order=0, data=0)
    weights2, order2, draws2 = start(data, init=1, order=0, data=0)
    assert not same_weights(weights, weights2)
    assert torch.equal(order, order2) and torch.equal(draws, draws2)


def test_set_seeds_make_the_run_seed_irrelevant(data):
    first, second = start(data, 1, init=0, order=2), start(data, 5, init=0, order=2)
    assert same_weights(first[0], second[0]) and torch.equal(first[1], second[1]) and torch.equal(first[2], second[2])


def test_unset_seeds_draw_as_the_run_seed_always_did(data):
    cfg = plugins.resolve(TINY)
    assert config.seeds(cfg, 3) == config.RunSeeds(3, 3, 3, explicit=False)
    weights, order, draws = start(data, 3)
    train.seed_everything(3)  # one stream: the weights, then the masks and augmentations
    model = pretraining.encoder("emg", cfg, data)
    assert same_weights(weights, model.state_dict()) and torch.equal(draws, torch.rand(8))
    batches = train.Batches(data.selection("pretrain"), 8, CPU, 3)
    assert torch.equal(order, torch.cat([b["index"] for b in batches.epoch(1)]))


def test_the_variance_suite_varies_one_source_per_variant():
    runs = {(r.variant.name, r.seed): r for r in plan(load_suite("variance"), overrides=TINY)}
    assert len(runs) == 9
    synth_seed = {k: r.config["data"]["synth"]["seed"] for k, r in runs.items()}
    assert [synth_seed[("vary_data", s)] for s in (0, 1, 2)] == [0, 1, 2]  # the data follows the data seed
    assert {synth_seed[(v, s)] for v in ("vary_init", "vary_order") for s in (0, 1, 2)} == {0}
    keys = {k: [s.key for s in r.stages] for k, r in runs.items()}
    # at seed 0 the three variants are one configuration: they share every stage
    assert keys[("vary_init", 0)] == keys[("vary_order", 0)] == keys[("vary_data", 0)]
    assert len({tuple(k) for k in keys.values()}) == 7
    # the MAE stages of init seed 1 differ from those of order seed 1 (the Pose-MAE's own initialisation)
    assert keys[("vary_init", 1)][0] != keys[("vary_order", 1)][0]


def test_unset_seeds_keep_the_stage_keys_of_the_run_seed():
    suite = load_suite("smoke")
    plain = plan(suite, (1,), ["cpep"], TINY)[0]
    explicit = plan(suite, (1,), ["cpep"], TINY | {"seeds.init": 1, "seeds.order": 1, "seeds.data": 1})[0]
    assert plain.config["data"]["synth"] == explicit.config["data"]["synth"]
    # set to the run seed, the seeds are explicit: training re-seeds after building the model, so new stages
    assert [s.key for s in plain.stages] != [s.key for s in explicit.stages]
    with pytest.raises(ConfigError, match="seeds.order"):
        plugins.resolve(TINY, {"seeds.order": -2})
