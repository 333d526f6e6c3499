#!/usr/bin/env bash
# The one prepared GPU check (one H100: at most ~8 minutes, no network needed).
#
#   bash benchmarks/gpu_check.sh [OUT]      # OUT: where the results go (default:
#                                           # $OUT if set, else benchmarks/results/gpu)
#
# 1. the CUDA tests (tests/test_cuda.py, `pytest -m cuda`): slim layers vs their
#    static twins under cudnn.benchmark (fp32/fp16/bf16), the hooked step's
#    gradient = the sum of its members', AMP fp16 (one optimizer step and one
#    loss-scaler update per cohort), views made from the batch and BN calibration
#    equal to the CPU's; report in OUT/cuda_tests.xml and .txt;
# 2. every benchmark on cuda with cudnn.benchmark (benchmarks/run_all.sh: slim vs
#    stock vs static, the hooked step vs the plain one and vs the FLOPs-expected
#    ratio, the steady state at iteration 200 vs 20), JSON in OUT/.
# Without CUDA, step 1 skips cleanly and step 2 is not run.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-${OUT:-benchmarks/results/gpu}}
mkdir -p "$OUT"
status=0
timeout 240 "$PY" -m pytest -q -m cuda tests/test_cuda.py --junitxml "$OUT/cuda_tests.xml" \
    2>&1 | tee "$OUT/cuda_tests.txt" || status=1
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$PY" -c 'import json, torch; print(json.dumps(dict(gpu=torch.cuda.get_device_name(0),
        torch=torch.__version__, cuda=torch.version.cuda)))' > "$OUT/device.json"
    DEVICE=cuda RESULTS="$OUT" timeout 300 bash benchmarks/run_all.sh || status=1
else
    echo "gpu_check: no CUDA device; the GPU benchmarks were not run" | tee "$OUT/no_cuda.txt"
fi
exit $status
