#!/usr/bin/env bash
# The one prepared GPU check: on one H100/H200 within ~8 minutes, no network, on a
# bare machine (Python, torch, numpy, opencv, onnx, onnxruntime, pytest; no OpenMMLab
# package).
#
#   bash benchmarks/gpu_wheels.sh wheels        # here, once: the wheels the core needs
#   bash benchmarks/gpu_check.sh --python python3 --wheels wheels OUT   # there
#
# Options: --python PY (default: .venv/bin/python if present, else python3);
# --wheels DIR installs DIR/*.whl with no index and no dependency resolution into
# OUT/site (on PYTHONPATH, with the repository); OUT (default: $OUT, else
# benchmarks/results/gpu) receives everything as JSON / text:
#   environment.json  the device, torch, and which extras import (mmdet, mmaction)
#   tests.xml/.txt    with CUDA: the CUDA tests (`pytest -m cuda`): slim layers vs
#                     their static twins under cudnn (fp32/fp16/bf16), the hooked
#                     step's gradient = the sum of its members' (also under AMP),
#                     views made from the batch, BN calibration = the CPU's; tests
#                     that need an absent extra are skipped, by name, in the report.
#                     Without CUDA (CPU mode): the slim layers' tests (`pytest -m core`)
#   table3.json       the paper's Table III: MobileNetV1 [0.25, 1] and ResNet-50
#                     [0.7, 1] at 224 px, batch 64 and 128, hooked vs plain step vs
#                     the FLOPs-expected ratio, memory peaks (CPU mode: tiny sizes)
#   benchmarks/       with mmdet and mmaction2 importing: benchmarks/run_all.sh
#   skipped.txt       what was not run, and why
set -u
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
WHEELS=
OUT=${OUT:-benchmarks/results/gpu}
while [ $# -gt 0 ]; do
    case $1 in
        --python) PY=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        -*) echo "gpu_check: unknown option $1 (valid: --python PY, --wheels DIR, OUT)" >&2; exit 2 ;;
        *) OUT=$1; shift ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/skipped.txt"
status=0
if [ -n "$WHEELS" ]; then
    ls "$WHEELS"/*.whl > /dev/null || { echo "gpu_check: no wheels in $WHEELS" >&2; exit 2; }
    "$PY" -m pip install --quiet --no-index --no-deps --target "$OUT/site" "$WHEELS"/*.whl \
        || { echo "gpu_check: installing the wheels of $WHEELS failed" >&2; exit 2; }
    export PYTHONPATH="$OUT/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - "$OUT/environment.json" <<'EOF' || exit 2
import json, sys
import torch
import mutual_mm
from mutual_mm.extras import available
env = dict(torch=torch.__version__, cuda=torch.version.cuda,
           device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu',
           mmdet=available('mmdet'), mmaction=available('mmaction'))
json.dump(env, open(sys.argv[1], 'w'), indent=1)
print('gpu_check:', env)
EOF
has() { "$PY" -c "import json, sys; sys.exit(0 if json.load(open('$OUT/environment.json'))['$1'] else 1)"; }
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    tests=(-m cuda tests/test_cuda_core.py tests/test_cuda.py)
    table3=()
else
    echo "no CUDA device (CPU mode): the CUDA tests and the full-size Table III; instead the slim layers' tests and Table III at tiny sizes" \
        >> "$OUT/skipped.txt"
    tests=(-m core tests/test_ops.py tests/test_cuda_core.py)
    table3=(--device cpu --batches 2 --size 64 --iters 3 --warmup 1)
fi
timeout 240 "$PY" -m pytest -q -rs -p no:cacheprovider "${tests[@]}" \
    --junitxml "$OUT/tests.xml" 2>&1 | tee "$OUT/tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 420 "$PY" benchmarks/table3_step.py --out "$OUT/table3.json" "${table3[@]}" \
    || status=1
if has mmdet && has mmaction && "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    DEVICE=cuda PYTHON="$PY" RESULTS="$OUT/benchmarks" timeout 300 bash benchmarks/run_all.sh \
        || status=1
else
    echo "benchmarks/run_all.sh (detection and video benchmarks): needs CUDA, mmdet and mmaction2" \
        >> "$OUT/skipped.txt"
fi
cat "$OUT/skipped.txt"
exit $status
