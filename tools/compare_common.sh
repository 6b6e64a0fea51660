# Sourced by tools/compare_*.sh: runs medtune and its peer alternately, so that a shared host's
# drift hits both, and takes each side's median.

# The number after "NAME": in the JSON object on standard input.
field() { grep -o "\"$1\": *[0-9.]*" | grep -o '[0-9.]*$'; }

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# alternate ROUNDS FIELD PEER_LABEL: calls the caller's functions `ours` and `theirs` (each prints
# one JSON object) ROUNDS times in turn, prints every run, and sets `median_ours` and
# `median_theirs` to the medians of FIELD.
alternate() {
  local rounds=$1 name=$2 peer=$3 m t
  local -a ours_runs=() theirs_runs=()
  for _ in $(seq "$rounds"); do
    m=$(ours)
    t=$(theirs)
    printf '%-14s%s\n' "medtune:" "$m" "$peer:" "$t"
    ours_runs+=("$(echo "$m" | field "$name")")
    theirs_runs+=("$(echo "$t" | field "$name")")
  done
  median_ours=$(median "${ours_runs[@]}")
  median_theirs=$(median "${theirs_runs[@]}")
}
