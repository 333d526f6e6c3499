#!/usr/bin/env bash
# Creates (or re-uses) the project's environment in .venv/ at the repository root.
#
# Idempotent: a stamp file records a hash of every requirement and of this script;
# when nothing changed the script returns in about a second. pip keeps the one slow
# artefact (the mmcv wheel, ~13 min to compile on 2 cores) in its wheel cache, so
# even a fresh .venv on the same machine installs in about a minute.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
STAMP="$VENV/.mutual_mm-installed"

# Everything that decides what gets installed; a change to any of it re-runs the install.
want="$(cat "$ROOT/tools/setup_env.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

log() { printf '[setup_env] %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

# setuptools >= 77.0.3 is what torch 2.13 declares; < 81 keeps pkg_resources, which
# mmcv's setup.py, openmim and mmengine's `mmdet::` config bases import.
log "installing build tools and torch 2.13.0 (CPU)"
"${pip[@]}" install -q "pip>=23" "setuptools>=77.0.3,<81" wheel ninja "numpy>=1.24" torch==2.13.0

# mmcv 2.1.0 has no binary wheel for this torch: build it with its compiled ops
# (RoIAlign, nms: needed by Mask R-CNN and AVA). --no-build-isolation so it compiles
# against the torch installed above; pip caches the built wheel for the next time.
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
    log "building mmcv 2.1.0 with ops (about 13 minutes on 2 cores the first time; cached afterwards)"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${pip[@]}" install --no-build-isolation mmcv==2.1.0
fi

log "installing the OpenMMLab stack, ONNX Runtime and test tools"
"${pip[@]}" install -q -r "$ROOT/requirements/stack.txt" -r "$ROOT/requirements/onnx.txt" \
    -r "$ROOT/requirements/tests.txt"

# MMDeploy: an optional extra (whole-detector ONNX export), installed without its
# dependencies (requirements/mmdeploy.txt says why), for the tests and the demo.
log "installing MMDeploy 1.3.1 (no dependencies) and its light ones"
"${pip[@]}" install -q --no-deps mmdeploy==1.3.1
"${pip[@]}" install -q -r "$ROOT/requirements/mmdeploy.txt"

log "installing mutual_mm (editable)"
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$ROOT"

"$VENV/bin/python" -c "import mutual_mm, mmcv.ops, mmdet, mmaction, onnxruntime, mmdeploy" >/dev/null
echo "$want" > "$STAMP"
log "environment ready: $VENV"
