#!/usr/bin/env bash
# LoRA training step of medtune and of PyTorch+PEFT on the same preset and settings, back to back
# (run on a quiet machine).   tools/compare_train.sh small
set -euo pipefail
preset=${1:-small}
cd "$(dirname "$0")/.."
medtune=${MEDTUNE:-target/release/medtune}
python=${PYTHON:-.venv/bin/python}
echo "medtune:      $($medtune bench train --preset "$preset" --json)"
echo "pytorch+peft: $($python tools/bench_train.py --preset "$preset" --json 2>/dev/null)"
echo "pytorch+peft: $($python tools/bench_train.py --preset "$preset" --full-logits --json 2>/dev/null)"
