#!/usr/bin/env bash
# Loglik evaluation questions/s of medtune and of transformers on the same preset, dtype and
# machine, back to back (run it on a quiet machine: a busy core slows PyTorch 4-5x).
#   tools/compare_eval.sh small f32
set -euo pipefail
preset=${1:-small}
dtype=${2:-f32}
cd "$(dirname "$0")/.."
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
echo "medtune:      $($medtune bench eval --preset "$preset" --dtype "$dtype" --json)"
echo "transformers: $($python tools/bench_eval.py --preset "$preset" --dtype "$dtype" --threads 2 --json 2>/dev/null)"
