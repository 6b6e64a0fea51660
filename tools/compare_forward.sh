#!/usr/bin/env bash
# Prefill/decode tokens/s of medtune and of transformers on the same preset, dtype and machine,
# alternating the two for ROUNDS rounds (default 3) so that a shared host's drift hits both;
# prints every run, then each side's median decode rate and their ratio. Run it on a quiet
# machine: a busy core slows PyTorch 4-5x.
#   tools/compare_forward.sh small f32
set -euo pipefail
preset=${1:-small}
dtype=${2:-f32}
cd "$(dirname "$0")/.."
source tools/compare_common.sh
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
ours() { $medtune bench forward --preset "$preset" --dtype "$dtype" --json; }
theirs() {
  $python tools/bench_forward.py --preset "$preset" --dtype "$dtype" --threads 2 --json 2>/dev/null
}
alternate "${ROUNDS:-3}" decode_tokens_per_s transformers
echo "median decode tokens/s: medtune $median_ours, transformers $median_theirs, ratio $(awk -v a="$median_ours" -v b="$median_theirs" 'BEGIN{printf "%.2f", a/b}')"
