#!/usr/bin/env bash
# The reconnect-storm simulation of issue 10 (storm/, BENCHMARKS.md
# "Reconnect storm"): runs the whole matrix in release, keeps its tables and
# series, and draws docs/storm.png and docs/storm-60s.png.
#
#   bash scripts/storm.sh [storm's options, e.g. --seed 2 or --quick]
#
# Results go to $STORM_OUT (default target/storm): tables.md, csv/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${STORM_OUT:-target/storm}
mkdir -p "$out"
cargo build --release -q -p edge-storm
./target/release/storm --csv "$out/csv" "$@" | tee "$out/tables.md"
python3 scripts/storm-plot.py "$out/csv" docs
echo "tables: $out/tables.md"
echo "series: $out/csv/ (index.csv names each run)"
echo "plots:  docs/storm.png (10-s outage), docs/storm-60s.png (60-s outage)"
