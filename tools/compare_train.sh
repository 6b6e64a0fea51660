#!/usr/bin/env bash
# LoRA training step of medtune and of PyTorch+PEFT on the same preset and settings, alternating
# the two for ROUNDS rounds (default 3) so that a shared host's drift hits both; prints every
# run (PEFT's best case: logits only at the answer tokens; then once its full-logits loop), each
# side's median s/step and the speed-up over PEFT's best case. Run it on a quiet machine.
#   tools/compare_train.sh small
set -euo pipefail
preset=${1:-small}
rounds=${ROUNDS:-3}
cd "$(dirname "$0")/.."
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
step() { grep -o '"s_per_step": *[0-9.]*' | grep -o '[0-9.]*$'; }
ours=(); theirs=()
for _ in $(seq "$rounds"); do
  m=$($medtune bench train --preset "$preset" --json)
  t=$($python tools/bench_train.py --preset "$preset" --json 2>/dev/null)
  echo "medtune:      $m"
  echo "pytorch+peft: $t"
  ours+=("$(echo "$m" | step)"); theirs+=("$(echo "$t" | step)")
done
echo "pytorch+peft: $($python tools/bench_train.py --preset "$preset" --full-logits --json 2>/dev/null)"
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "median s/step: medtune $mo, pytorch+peft best case $mt, speed-up $(awk -v a="$mo" -v b="$mt" 'BEGIN{printf "%.2f", b/a}')"
