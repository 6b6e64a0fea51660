#!/usr/bin/env bash
# Loglik evaluation questions/s of medtune and of transformers on the same preset, dtype and
# machine, alternating the two for ROUNDS rounds (default 3) of QUESTIONS questions (default
# 128) so that a shared host's drift hits both; prints every run, then each side's median and
# the ratio of medians. Run it on a quiet machine: a busy core slows PyTorch 4-5x.
#   tools/compare_eval.sh small f32
set -euo pipefail
preset=${1:-small}
dtype=${2:-f32}
questions=${QUESTIONS:-128}
cd "$(dirname "$0")/.."
source tools/compare_common.sh
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
ours() { $medtune bench eval --preset "$preset" --dtype "$dtype" --questions "$questions" --json; }
theirs() {
  $python tools/bench_eval.py --preset "$preset" --dtype "$dtype" --questions "$questions" \
    --threads 2 --json 2>/dev/null
}
alternate "${ROUNDS:-3}" questions_per_s transformers
echo "median questions/s: medtune $median_ours, transformers $median_theirs, ratio $(awk -v a="$median_ours" -v b="$median_theirs" 'BEGIN{printf "%.2f", a/b}')"
