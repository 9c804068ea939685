#!/usr/bin/env bash
# GPU energy check (under 5 minutes on a machine with an NVIDIA GPU); see scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
exec .venv/bin/python scripts/gpu_check.py "$@"
