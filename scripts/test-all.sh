#!/usr/bin/env bash
# Runs every test of the project: the command README.md names, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every cargo test's output is also kept here, for the closing summary line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit, model, property, vector and doc tests"
cargo test --workspace 2>&1 | tee -a "$log"

echo "== fleet simulation, ${EDGE_SIM_SEEDS:=2000} seeds, release"
EDGE_SIM_SEEDS=$EDGE_SIM_SEEDS cargo test -p agent-core --release --test simulation 2>&1 | tee -a "$log"
echo "== fleet simulation against a naive collector (no repeated acks, keeps damaged links)"
EDGE_SIM_NAIVE_COLLECTOR=1 EDGE_SIM_SEEDS=$EDGE_SIM_SEEDS cargo test -p agent-core --release --test simulation 2>&1 | tee -a "$log"

echo "== agent-core builds for bare metal (no_std, no alloc)"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    cargo build -p agent-core --release --target "$target" --no-default-features --features crc-table1
  else
    echo "notice: target $target not installed; bare-metal build skipped"
  fi
done

echo "== flash size on Cortex-M4"
bash scripts/size-report.sh

# ---- ring and speed (issue 7) ------------------------------------------------
echo "== CRC-32C: the hardware choice (crc-hw) agrees with the tables"
cargo test -p agent-core --features crc-hw --test crc_props 2>&1 | tee -a "$log"
echo "== benches smoke: every criterion bench runs once (test mode, not timed)"
cargo test -p edge-agent-benches --benches 2>&1 | tee -a "$log"
# ---- end ring and speed --------------------------------------------------------

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== API docs build without warnings (broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

echo "== fuzz smoke: every cargo-fuzz target, ${FUZZ_SECONDS:=20} s each, after its regression inputs"
FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz-smoke.sh

# One closing line over every cargo test run above (a failure has already
# stopped the script with a non-zero exit).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
