"""`cpep-bench spread`: the same runs trained under several environments, each in its own runs directory on
shared data; the same environment twice agrees exactly."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import tiny_args
from test_cli import cli, records

from bench.check.spread import AVX2, kernel_capability, parse_environments
from cpep.errors import UserError

SMOKE = {"cpep": {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}, "pose_mae": {"lp_id", "lp_unseen"},
         "emg_log_power": {"lp_id", "lp_unseen"}, "pose_features": {"lp_id", "lp_unseen"}}


def test_environments_are_parsed_and_set_the_kernel_level(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # the default kernels must not inherit this
    default, avx2, again, cuda = parse_environments(["cpu-1t", "cpu-2t-avx2", "cpu-1t", "cuda"])
    assert (default.name, default.threads, default.kernels) == ("cpu-1t", 1, "default")
    assert "ATEN_CPU_CAPABILITY" not in default.process_env()
    assert (avx2.threads, avx2.kernels) == (2, "avx2")
    assert {k: avx2.process_env()[k] for k in AVX2} == AVX2
    assert again.name == "cpu-1t.2"
    assert cuda.run_args() == ["--device", "cuda"]
    assert kernel_capability(avx2) == "AVX2"
    for specs in (["cpu-1t"], ["cpu-1t", "cpu-0t"], ["cpu-1t", "gpu"], ["cpu-1t", "cpu-1t-sse"]):
        with pytest.raises(UserError):
            parse_environments(specs)


def test_spread_of_one_environment_twice_is_exactly_zero(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    out = cli("spread", "--suite", "smoke", "--seeds", "0-1", "--envs", "cpu-1t,cpu-1t", "--runs-dir", results,
              *tiny_args()).stdout
    where = results / "spread" / "smoke"
    result = json.loads((where / "spread-smoke.json").read_text())

    assert [e["name"] for e in result["environments"]] == ["cpu-1t", "cpu-1t.2"]
    for env in result["environments"]:
        assert env["exit_code"] == 0 and env["threads"] == 1 and env["torch_cpu_capability"]
        assert (where / env["name"] / "data").resolve() == (results / "data").resolve()  # one copy of the data
        recs = records(where / env["name"])
        assert len(recs) == 2 * len(SMOKE) and {s["environment"]["threads"] for r in recs.values() for s in r["stages"]} == {1}
    assert result["command"].startswith("cpep-bench spread --suite smoke")
    assert result["machine"]["cpu"] and result["machine"]["torch"] and result["git"]["commit"] and result["date"]
    assert result["seeds"] == [0, 1]

    rows = {(r["variant"], r["metric"]): r for r in result["rows"]}
    assert set(rows) == {(v, m) for v, metrics in SMOKE.items() for m in metrics}
    for r in rows.values():
        assert r["range"] == 0.0, r  # identical environments: bit-identical training
        per_seed = [r["values"]["cpu-1t"][s] for s in ("0", "1")]
        assert all(0 <= v <= 1 for v in per_seed), r
        assert r["seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
        assert r["mean"]["cpu-1t"] == pytest.approx(np.mean(per_seed))

    with (where / "spread-smoke.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(t["variant"], t["metric"]) for t in table] == [(r["variant"], r["metric"]) for r in result["rows"]]
    assert all(float(t["range"]) == 0.0 and t["seeds"] == "2" for t in table)

    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    shown = lines[header:header + 1 + len(rows)]
    assert "cpu-1t.2" in shown[0] and "range" in shown[0] and "seed sd" in shown[0]
    assert max(map(len, shown)) <= 80
