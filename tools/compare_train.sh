#!/usr/bin/env bash
# LoRA training step of medtune and of PyTorch+PEFT on the same preset and settings, alternating
# the two for ROUNDS rounds (default 3) so that a shared host's drift hits both; prints every
# run (PEFT's best case: logits only at the answer tokens; then once its full-logits loop), each
# side's median s/step and the speed-up over PEFT's best case. Run it on a quiet machine.
#   tools/compare_train.sh small
set -euo pipefail
preset=${1:-small}
cd "$(dirname "$0")/.."
source tools/compare_common.sh
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
ours() { $medtune bench train --preset "$preset" --json; }
theirs() { $python tools/bench_train.py --preset "$preset" --json 2>/dev/null; }
alternate "${ROUNDS:-3}" s_per_step pytorch+peft
echo "pytorch+peft: $($python tools/bench_train.py --preset "$preset" --full-logits --json 2>/dev/null)"
echo "median s/step: medtune $median_ours, pytorch+peft best case $median_theirs, speed-up $(awk -v a="$median_ours" -v b="$median_theirs" 'BEGIN{printf "%.2f", b/a}')"
