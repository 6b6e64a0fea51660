#!/usr/bin/env bash
# Compares two medtune binaries (e.g. before and after a refactor) on the same machine, run
# alternately so that a shared host's drift hits both: bench forward (small f32, qwen3-0.6b bf16
# decode), bench train (small) and bench eval (small); medians of ROUNDS runs each.
#
#   tools/compare_builds.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
#
# Build the "before" binary from another commit in a worktree, e.g.
#   git worktree add /tmp/before 4f9d8ba && (cd /tmp/before && cargo build --release -p medtune) \
#     && cp /tmp/before/target/release/medtune /tmp/medtune-before
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/compare_common.sh
before=$1 after=$2 rounds=${3:-3}

compare() { # LABEL FIELD ARGS...
  local label=$1 name=$2
  shift 2
  args=("$@")
  ours() { "$after" "${args[@]}" --json 2>/dev/null | tail -n 1; }
  theirs() { "$before" "${args[@]}" --json 2>/dev/null | tail -n 1; }
  echo "== $label ($name; after vs before)"
  alternate "$rounds" "$name" before
  printf 'median %s: after %s, before %s\n\n' "$name" "$median_ours" "$median_theirs"
  summary+=("$(printf '%-34s %-22s after %10s   before %10s' "$label" "$name" "$median_ours" "$median_theirs")")
}

summary=()
compare "forward small f32 (prefill)" prefill_tokens_per_s bench forward --preset small --dtype f32
compare "forward small f32 (decode)" decode_tokens_per_s bench forward --preset small --dtype f32
compare "forward qwen3-0.6b bf16 (decode)" decode_tokens_per_s bench forward --preset qwen3-0.6b --dtype bf16
compare "train small f32" s_per_step bench train --preset small
compare "eval small f32" questions_per_s bench eval --preset small
printf '%s\n' "${summary[@]}"
