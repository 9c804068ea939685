#!/usr/bin/env bash
# GPU checks on a machine with an NVIDIA GPU:
#   energy  the energy check (under 5 minutes); see scripts/gpu_check.py
#   levers  optimize's recipes on CUDA, time and energy to a target, a small sweep (~3 minutes)
#   power   a short power-limit sweep (about a minute; needs root, skipped otherwise)
#
#   scripts/gpu_check.sh [gpu_check.py options]     # all three; OUT=dir keeps the outputs there
#   ONLY=levers scripts/gpu_check.sh                # one of them
#   PY=python3 ONLY=levers scripts/gpu_check.sh     # an existing environment: no make install
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  make install >/dev/null
  PY=.venv/bin/python
fi
ONLY="${ONLY:-all}"
OUT="${OUT:-runs}"
mkdir -p "$OUT"
bigbench() { "$PY" -m bigbench "$@"; }
# A check that fails says so and the others still run (the exit code reports it at the end).
failed=0
check() { "$@" || { echo "FAILED ($?): $*" >&2; failed=1; }; }
wants() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

if wants energy; then
  check "$PY" scripts/gpu_check.py "$@"
fi

# --- Levers --------------------------------------------------------------------------------
# optimize on CUDA: structured pruning (index tensors on the GPU), int8 dynamic, int8 and int4
# weight-only (torchao's CUDA kernels), a distilled student; int8_static is skipped on CUDA.
# Then time and energy to 97% test accuracy for the reference CNN, stopping there, and a sweep
# of batch size × precision to the same target (Pareto set and the eta = 0.5 optimum).
if wants levers; then
  echo "== optimize on CUDA =="
  check bigbench optimize configs/optimize-cnn.yaml --device cuda --out "$OUT/optimize-cuda" \
    --set optimize.repeats=2 \
    --set 'optimize.variants=[{kind: prune, method: structured, amount: 0.5, finetune_steps: 150}, {kind: quantize, method: int8_dynamic}, {kind: quantize, method: int8_weight_only}, {kind: quantize, method: int4_weight_only}, {kind: distill, student: {name: cnn, channels: [16, 32], hidden: [50]}}]' \
    --markdown
  echo "== time and energy to 97% accuracy =="
  check bigbench train configs/cnn.yaml --device cuda --out "$OUT/target-cuda" \
    --set train.target_accuracy=0.97 --set train.eval_every=50 --set train.stop_at_target=true
  [ -f "$OUT/target-cuda/run.json" ] && "$PY" - "$OUT/target-cuda/run.json" <<'PY'
import json, sys

record = json.load(open(sys.argv[1]))
print(json.dumps({k: v for k, v in record["target"].items() if k != "evaluations"}, indent=1))
PY
  echo "== sweep: batch size x precision to 97% accuracy =="
  check bigbench sweep configs/sweep-cnn.yaml --device cuda --out "$OUT/sweep-cuda" \
    --set train.target_accuracy=0.97 --set 'sweep.batch_sizes=[64, 256]' \
    --set 'sweep.precisions=[fp32, bf16]' --set sweep.repeats=1 --markdown
fi

if ! wants power; then
  exit "$failed"
fi

# --- Power limits --------------------------------------------------------------------------
# The reference CNN's training step at the GPU's lowest, default and highest power limit
# (3 repeats of 5 s each): samples/s and J/sample per limit, the limit actually in effect, and
# the temperature and throttle reasons at the measured windows' edges. bench restores the
# original limit itself; gpu_state.json in the folder is what `bigbench gpu restore` would use.
echo
echo "== power-limit sweep =="
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: setting a GPU power limit needs root (sudo scripts/gpu_check.sh)"
  exit "$failed"
fi
power_out="$OUT/power-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$(dirname "$power_out")"
bigbench gpu show
check bigbench bench --device cuda --models cnn --mode train --batch-sizes 256 \
  --power-limits min,default,max --duration 5 --out "$power_out" --markdown
"$PY" - "$power_out/bench.json" <<'PY'
import json, sys

doc = json.load(open(sys.argv[1]))
print(f"GPU {doc['gpu_control']['name']}: original limit "
      f"{doc['gpu_control']['original_power_limit_w']} W, restored: "
      f"{doc['gpu_control']['restored']}")
for p in doc["points"]:
    g, e = p.get("gpu_settings") or {}, (p.get("energy") or {}).get("j_per_sample") or {}
    start, end = g.get("start") or {}, g.get("end") or {}
    print(f"{p['id']}: {p['status']}, requested {g.get('requested_w')} W, in effect "
          f"{g.get('in_effect_w')} W, {(p.get('samples_per_s') or {}).get('median')} samples/s, "
          f"{e.get('median')} J/sample, {start.get('temperature_c')}→{end.get('temperature_c')} °C, "
          f"throttle {end.get('throttle_reasons')}")
PY
exit "$failed"
