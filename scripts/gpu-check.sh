#!/usr/bin/env bash
# The GPU path in one go, on a machine with CUDA: the tests that need a GPU, `cpep-bench perf --project paper`
# (eager and compiled steps, bf16), and the smoke suite trained and reported on the GPU. Each part has a time
# limit (TESTS_S, PERF_S, SMOKE_S seconds), so that what was measured before a slow part is kept.
#
#   scripts/gpu-check.sh OUT_DIR      logs, the perf CSV/JSON and the smoke report land in OUT_DIR
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
results=$(mktemp -d)
cli() { python3 -m bench.cli "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
timeout "${TESTS_S:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_fastpath.py tests/test_zero_shot.py \
    -k "cuda or fused or cached or compiled or zero_shot" 2>&1 | tail -n 20 | tee "$out/tests.log"
timeout "${PERF_S:-300}" python3 -m bench.cli perf --project paper --runs-dir "$results" --out "$out" 2>&1 |
    tee "$out/perf.log"
timeout "${SMOKE_S:-240}" python3 -m bench.cli run --suite smoke --runs-dir "$results" 2>&1 | tail -n 30 |
    tee "$out/smoke.log" &&
    cli report --suite smoke --runs-dir "$results" --out "$results/report" --format md 2>&1 | tail -n 40 |
    tee -a "$out/smoke.log" && cp "$results/report/table.md" "$out/smoke-table.md"
