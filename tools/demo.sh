#!/usr/bin/env bash
# The README's main command: set up .venv (idempotent), then run the demo.
# Extra arguments go to tools/demo.py (see `bash tools/demo.sh --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" "$ROOT/tools/demo.py" "$@"
