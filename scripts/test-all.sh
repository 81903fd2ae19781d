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

# ---- agent-ffi: the no_std C library for bare metal. Its C tests (strict
# compiles, ASan/UBSan, TSan, valgrind, no heap calls, pkg-config install)
# and the header drift check run in `cargo test --workspace` above.
echo "== libedge_agent.a builds for bare metal (no_std, panic traps) and needs nothing undefined"
llvm_nm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-nm"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    cargo build -p agent-ffi --release --target "$target" --no-default-features --features crc-table1 2>&1 | grep -v "dropping unsupported crate type"
    lib="target/$target/release/libedge_agent.a"
    if [ -x "$llvm_nm" ]; then
      undefined=$(comm -23 <("$llvm_nm" -u "$lib" 2>/dev/null | awk 'NF==2 {print $2}' | sort -u) \
                           <("$llvm_nm" --defined-only "$lib" 2>/dev/null | awk 'NF==3 {print $3}' | sort -u))
      if [ -n "$undefined" ]; then echo "$lib needs undefined symbols:"; echo "$undefined"; exit 1; fi
      echo "$lib: $("$llvm_nm" --defined-only "$lib" 2>/dev/null | grep -c ' T ea_') ea_* functions, no undefined symbols"
    else
      echo "notice: llvm-nm not installed (rustup component add llvm-tools); symbol check skipped"
    fi
  else
    echo "notice: target $target not installed; bare-metal build of agent-ffi skipped"
  fi
done
# ---- end agent-ffi

echo "== flash size on Cortex-M4"
bash scripts/size-report.sh
echo "== worst-case stack per entry point on Cortex-M4 (call graph; painted run if qemu-system-arm is installed)"
bash scripts/stack-report.sh

# ---- ring and speed (issue 7) ------------------------------------------------
echo "== CRC-32C: the hardware choice (crc-hw) agrees with the tables"
cargo test -p agent-core --features crc-hw --test crc_props 2>&1 | tee -a "$log"
echo "== benches smoke: every criterion bench runs once (test mode, not timed)"
cargo test -p edge-agent-benches --benches 2>&1 | tee -a "$log"
# ---- end ring and speed --------------------------------------------------------

# ---- edge-collector (collector/) -------------------------------------------
# Its unit and end-to-end tests ran with `cargo test --workspace` above.
echo "== the demo on edge-collector (debug build of README's first command)"
cargo run -q --example demo >/dev/null
echo "== edge-collector's sans-IO core builds without the server feature (as the fuzz target uses it)"
cargo check -q -p edge-collector --no-default-features
# ---- end edge-collector ----------------------------------------------------

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== API docs build without warnings (broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

echo "== fuzz smoke: every cargo-fuzz target, ${FUZZ_SECONDS:=20} s each, after its regression inputs"
FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz-smoke.sh

# One closing line over every cargo test run above (a failure has already
# stopped the script with a non-zero exit).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
