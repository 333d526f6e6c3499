#!/usr/bin/env bash
# Prepare the wheels the core needs on a bare machine that has Python, torch, numpy,
# opencv, onnx, onnxruntime and pytest but no OpenMMLab package and no package index
# (the GPU machine this project is lent: Python 3.12, x86_64).
#
#   bash benchmarks/gpu_wheels.sh [DIR] [PYTHON_VERSION]   # default: wheels/ 3.12
#
# Downloads (here, where an index is reachable) mmengine, mmcv-lite (mmcv's Python
# parts, no compiled operators) and the dependencies of their imports that such a
# machine lacks, each without its own dependencies, for that Python and manylinux
# x86_64. benchmarks/gpu_check.sh --wheels DIR installs them there with no index.
# About 27 MiB for Python 3.12 (benchmarks/results/gpu_wheels_py312.json); wheels/ is
# ignored by git (pass it to the device machine as carried files).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-wheels}
PYVER=${2:-3.12}
PY=${PYTHON:-.venv/bin/python}
# mmengine 0.10.7 and mmcv 2.1.0 as in requirements/stack.txt; the rest are what their
# imports need (matplotlib for mmengine's visualizer, rich for its logging, yapf for
# its configs), at versions whose wheels exist for Python 3.11 and 3.12.
WHEELS=(
    mmengine==0.10.7 mmcv-lite==2.1.0 addict termcolor yapf platformdirs pyyaml
    rich markdown-it-py mdurl pygments
    matplotlib contourpy cycler fonttools kiwisolver pillow pyparsing python-dateutil six
    packaging
)
mkdir -p "$DIR"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 "${WHEELS[@]}"
echo "gpu_wheels: $(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR (Python $PYVER)"
