#!/usr/bin/env bash
# Prefill/decode tokens/s of medtune and of transformers on the same preset, dtype and machine,
# alternating the two for ROUNDS rounds (default 3) so that a shared host's drift hits both;
# prints every run, then each side's median decode rate and their ratio. Run it on a quiet
# machine: a busy core slows PyTorch 4-5x.
#   tools/compare_forward.sh small f32
set -euo pipefail
preset=${1:-small}
dtype=${2:-f32}
rounds=${ROUNDS:-3}
cd "$(dirname "$0")/.."
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
rate() { grep -o '"decode_tokens_per_s": *[0-9.]*' | grep -o '[0-9.]*$'; }
ours=(); theirs=()
for _ in $(seq "$rounds"); do
  m=$($medtune bench forward --preset "$preset" --dtype "$dtype" --json)
  t=$($python tools/bench_forward.py --preset "$preset" --dtype "$dtype" --threads 2 --json 2>/dev/null)
  echo "medtune:      $m"
  echo "transformers: $t"
  ours+=("$(echo "$m" | rate)"); theirs+=("$(echo "$t" | rate)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "median decode tokens/s: medtune $mo, transformers $mt, ratio $(awk -v a="$mo" -v b="$mt" 'BEGIN{printf "%.2f", a/b}')"
