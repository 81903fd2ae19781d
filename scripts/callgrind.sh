#!/usr/bin/env bash
# Instruction counts (callgrind "Ir") per operation for every bench case of
# benches/src/bin/cases.rs: each case runs with N and 2N iterations and the
# difference is divided by N (so setup cancels out) and by the operations
# per iteration (records per round for pipelines, bytes for the decoder).
# Stable on a shared machine where wall times are not.
#
#   bash scripts/callgrind.sh                 # every case
#   bash scripts/callgrind.sh push_full       # cases whose name contains it
#   BENCH_FEATURES="--features crc-hw" bash scripts/callgrind.sh pipeline
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  echo "callgrind: valgrind not installed (apt-get install valgrind); skipped"
  exit 0
fi
# shellcheck disable=SC2086
cargo build --quiet --profile bench -p edge-agent-benches --bin cases ${BENCH_FEATURES:-}
bin=target/release/cases
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ir() { # case iterations -> total Ir
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$1" "$2" 2>"$out/log" >/dev/null
  awk '/Collected :/ {print $NF}' "$out/log"
}
printf '%-32s %12s  %s\n' case "Ir/op" unit
for c in $("$bin" list); do
  case "$c" in *"${1:-}"*) ;; *) continue ;; esac
  case "$c" in
    pipeline*) n=300 ;;
    decoder*) n=20 ;;
    *) n=20000 ;;
  esac
  a=$(ir "$c" "$n")
  b=$(ir "$c" $((2 * n)))
  read -r per unit < <(sed -n 's/^cases: per_iteration=\([0-9]*\) unit=\(.*\)$/\1 \2/p' "$out/log")
  awk -v c="$c" -v a="$a" -v b="$b" -v n="$n" -v per="$per" -v unit="$unit" \
    'BEGIN { printf "%-32s %12.1f  per %s\n", c, (b - a) / n / per, unit }'
done
