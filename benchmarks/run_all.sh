#!/usr/bin/env bash
# Every benchmark in one command, JSON results into benchmarks/results/.
#
#   bash benchmarks/run_all.sh                 # CPU-friendly defaults, or the GPU's
#   THREADS=1 nice -n 5 bash benchmarks/run_all.sh   # a shared, loaded CPU machine
#   QUICK=1 bash benchmarks/run_all.sh         # tiny sizes: checks that all scripts run
#
# The device is cuda when torch.cuda.is_available(), else cpu (DEVICE=cpu forces
# the CPU). Each script keeps its own per-device defaults; on cuda the timed
# steps use cudnn.benchmark, and bench_mutual_step also runs its steady-state
# mode (200 hooked steps, iteration 20 vs 200). Environment:
#   PYTHON   interpreter (default: .venv/bin/python of the repository)
#   DEVICE   cpu | cuda (default: cuda if available)
#   THREADS  torch threads for the CPU benchmarks (default: torch's own); on a
#            machine shared with other jobs, 1 avoids OpenMP threads waiting on
#            each other, which can make 2-thread runs many times slower
#   RESULTS  output folder (default: benchmarks/results)
#   QUICK=1  tiny sizes and repeats (smoke test; the JSON go to RESULTS/quick/)
# Output files are named *_<device>.json (flops_slow8x8.json has no device).
# A failing benchmark does not stop the others; the exit status is 1 if any failed.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ -z "${DEVICE:-}" ]; then
    DEVICE=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
RES=${RESULTS:-benchmarks/results}
QUICK=${QUICK:-0}
[ "$QUICK" = 1 ] && RES="$RES/quick"
mkdir -p "$RES"
THR=()
if [ -n "${THREADS:-}" ]; then
    THR=(--threads "$THREADS")
    export OMP_NUM_THREADS="$THREADS"  # flops_slow8x8.py has no --threads
fi
CUDNN=()
[ "$DEVICE" = cuda ] && CUDNN=(--cudnn-benchmark)

failed=()
run() {  # run NAME ARGS...
    local name=$1
    shift
    echo
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then
        echo "=== $name: done in $((SECONDS - start)) s"
    else
        echo "=== $name: FAILED (exit $?) after $((SECONDS - start)) s"
        failed+=("$name")
    fi
}

if [ "$QUICK" = 1 ]; then
    BB=(--repeats 1 --warmup 0 --size 64)
    BB_SLOW=(--repeats 1 --warmup 0 --size 32 --frames 4)
    MS=(--repeats 1 --warmup 0 --size 32 --frames 4)
    MS_DET=(--repeats 1 --warmup 0 --size 96)
    MS_STEADY=(--steady-iters 3 --size 32 --frames 4)
    DL=(--repeats 1 --num-images 4 --num-videos 4 --image-size 160x120
        --video-size 128x96)
    CAL=(--num-batches 1 --test-samples 2 --video-size 32 --det-short 64)
    FLOPS=(--widths 1.0 --sizes 64 --frames 8)
elif [ "$DEVICE" = cuda ]; then
    BB=(); BB_SLOW=()
    MS=(--size 224 --batch 8)
    MS_DET=(--size 600)
    MS_STEADY=(--size 224 --batch 8 --steady-iters 200)
    DL=(); CAL=(); FLOPS=()
else
    BB=(); BB_SLOW=()
    MS=()
    MS_DET=(--size 360 --repeats 5)
    MS_STEADY=(--size 64 --steady-iters 30)
    DL=(); CAL=(); FLOPS=()
fi

echo "device $DEVICE, python $PY, results in $RES${THREADS:+, $THREADS thread(s)}"
run backbones_resnet50 "$PY" benchmarks/bench_backbones.py --model resnet50 \
    --device "$DEVICE" "${CUDNN[@]}" "${THR[@]}" "${BB[@]}" \
    --out "$RES/backbones_$DEVICE.json"
run backbones_slowonly "$PY" benchmarks/bench_backbones.py --model slowonly \
    --device "$DEVICE" "${CUDNN[@]}" "${THR[@]}" "${BB_SLOW[@]}" \
    --out "$RES/backbones_slowonly_$DEVICE.json"
run mutual_step "$PY" benchmarks/bench_mutual_step.py --device "$DEVICE" "${CUDNN[@]}" \
    "${THR[@]}" "${MS[@]}" --out "$RES/mutual_step_$DEVICE.json"
run mutual_step_batch_views_maskrcnn "$PY" benchmarks/bench_mutual_step.py \
    --model mask-rcnn --device "$DEVICE" "${CUDNN[@]}" "${THR[@]}" "${MS_DET[@]}" \
    --out "$RES/mutual_step_batch_views_maskrcnn_$DEVICE.json"
run mutual_step_steady "$PY" benchmarks/bench_mutual_step.py --device "$DEVICE" \
    --steady-state "${THR[@]}" "${MS_STEADY[@]}" --out "$RES/mutual_step_steady_$DEVICE.json"
run data_loading "$PY" benchmarks/bench_data_loading.py "${THR[@]}" "${DL[@]}" \
    --out "$RES/data_loading_$DEVICE.json"
run calibration "$PY" benchmarks/bench_calibration.py --device "$DEVICE" "${THR[@]}" \
    "${CAL[@]}" --out "$RES/calibration_$DEVICE.json"
run flops_slow8x8 "$PY" benchmarks/flops_slow8x8.py "${FLOPS[@]}" \
    --out "$RES/flops_slow8x8.json"

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all benchmarks done; results in $RES"
