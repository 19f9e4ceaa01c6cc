"""The scale rehearsal (`cpep-bench perf --scale`) on a tiny range of sizes: every phase measured at each size, the
growth fitted and projected, the files written with provenance, and the data removed. No timing is asserted."""

from __future__ import annotations

import csv
import json
import math

import pytest
from test_cli import assert_one_line_error, cli

from bench.perf import scale

TINY_SCALE = ["--set", "train.threads=1", "--set", "data.synth.stage_seconds=3", "--set", "data.synth.sessions=1",
              "--set", "data.synth.stages=v1", "--set", "data.vocab=synthetic-v1",
              "--set", "encoder.width=32", "--set", "encoder.depth=1", "--set", "encoder.heads=2",
              "--set", "mae.decoder_width=16", "--set", "linear_probe.max_iter=20"]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    runs = tmp_path_factory.mktemp("scale")
    out = cli("perf", "--scale", "--hours", "0.06,0.03", "--runs-dir", runs, *TINY_SCALE)
    return runs, out


def test_every_phase_is_measured_at_each_size_and_its_growth_projected(rehearsal):
    runs, out = rehearsal
    written = sorted((runs / "perf" / "scale").iterdir())
    assert [p.suffix for p in written] == [".csv", ".json", ".md"]
    document = json.loads(written[1].read_text())
    sizes = document["sizes"]
    assert [s["hours"] for s in sizes] == [0.03, 0.06]  # smallest first
    assert sizes[0]["users"] < sizes[1]["users"] and sizes[0]["recorded_hours"] < sizes[1]["recorded_hours"]
    for s in sizes:
        assert s["recorded_hours"] == pytest.approx(s["hours"], rel=0.5)  # sized in users: about the hours asked
        assert [name for name in s["phases"]] == [name for name, _, _ in scale.PHASES]
        assert all(p["seconds"] > 0 and p["anon_mb"] > 0 for p in s["phases"].values())
        assert s["data_bytes"] > 0 and s["cache_bytes"] > 0 and s["problems"] == []
        assert all(n > 0 for n in s["windows"].values())
    growth = {r["what"]: r for r in document["growth"]}
    assert set(growth) >= {name for name, _, _ in scale.PHASES} | {"recordings on disk", "window cache on disk"}
    for r in growth.values():
        assert math.isfinite(r["exponent"]) and r["projected"] > 0, r
        x = [s["recorded_hours" if r["axis"] == "recordings" else "pretrain_hours"] for s in sizes]
        a, b = scale.fit(x, r["measured"])
        assert r["projected"] == pytest.approx(math.exp(b) * scale.FULL_HOURS[r["axis"]] ** a)
    # the bytes of the recordings grow as the hours do: the fit says so
    assert growth["recordings on disk"]["exponent"] == pytest.approx(1.0, abs=0.1)
    assert document["disk_write_bytes_per_s"] > 0 and len(document["cache_vs_disk"]) == 2
    assert document["provenance"]["git"] and document["command"].startswith("cpep-bench perf --scale")
    assert document["overrides"]["data.in_memory_gb"] == 0  # the path of a full-size run: batches from the cache
    with written[0].open() as f:
        assert len(list(csv.DictReader(f))) == 2 * len(scale.PHASES)
    assert "| measured at |" in written[2].read_text()
    assert "epoch, default model" in out.stdout and "at full size" in out.stdout
    assert not [p for p in runs.iterdir() if p.name.startswith("scale-")], "the recordings were removed"
    shown = [line for line in out.stdout.splitlines() if not line.startswith("wrote ")]
    assert max(len(line) for line in shown) <= 80


def test_the_fit_finds_the_exponent_of_a_power_law():
    a, b = scale.fit([1, 2, 4, 8], [3 * h ** 1.5 for h in (1, 2, 4, 8)])
    assert a == pytest.approx(1.5) and math.exp(b) == pytest.approx(3.0)
    assert scale.fit([1], [2.0]) is None and scale.fit([1, 1], [2.0, 3.0]) is None


@pytest.mark.parametrize("hours, message", [
    ("0,1", "--hours takes positive hours of recordings, not '0,1'"),
    ("1,two", "--hours takes hours of recordings separated by commas"),
    ("1000000", "1e+06 h of recordings need about"),
])
def test_bad_sizes_are_one_line_errors_before_any_data_is_written(tmp_path, hours, message):
    result = cli("perf", "--scale", "--hours", hours, "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, message)
    assert not list(tmp_path.glob("scale-*")) and not (tmp_path / "perf" / "scale").exists()
