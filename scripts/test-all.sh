#!/usr/bin/env bash
# Runs every test of the project: the command README.md names, and what CI runs.
# A step or test whose outside tool is missing fails under CI (CI=true)
# and is skipped with a notice elsewhere (scripts/skip.sh,
# edge_testkit::missing); every skip is listed in the closing summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/skip.sh
# Every cargo test's output is also kept here, for the closing summary line,
# and every skip (with its reason) there.
log=$(mktemp)
EDGE_SKIP_LOG=$(mktemp)
export EDGE_SKIP_LOG
trap 'rm -f "$log" "$EDGE_SKIP_LOG"' EXIT

echo "== import cycles: no module imports back into one that imports it (issue 20)"
python3 scripts/module-cycles.py

echo "== unit, model, property, vector and doc tests"
cargo test --workspace 2>&1 | tee -a "$log"

echo "== agent-core and agent-ffi without the drop-oldest feature (the documented firmware build's set)"
cargo test -p agent-core --no-default-features --features crc-table1 2>&1 | tee -a "$log"
cargo test -p agent-ffi --no-default-features --features std,crc-table16 --lib 2>&1 | tee -a "$log"

echo "== fleet simulation, ${EDGE_SIM_SEEDS:=2000} seeds, release: agents against the real collector's session, ledger and admission"
EDGE_SIM_COLLECTOR=real EDGE_SIM_SEEDS=$EDGE_SIM_SEEDS cargo test -p edge-sim --release --test simulation 2>&1 | tee -a "$log"
echo "== fleet simulation against the test peer with its recovery habits (closes damaged links, repeats acks; Busy faults)"
EDGE_SIM_COLLECTOR=peer EDGE_SIM_SEEDS=$EDGE_SIM_SEEDS cargo test -p edge-sim --release --test simulation 2>&1 | tee -a "$log"

echo "== agent-core builds for bare metal (no_std, no alloc)"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    cargo build -p agent-core --release --target "$target" --no-default-features --features crc-table1,drop-oldest
  else
    skip_or_fail "agent-core bare-metal build ($target)" "target not installed (rustup target add $target)"
  fi
done
echo "== agent-core's optional defmt feature builds and lints for Cortex-M4 (firmware logs)"
if rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf; then
  cargo clippy -p agent-core --target thumbv7em-none-eabihf --features defmt -- -D warnings
else
  skip_or_fail "agent-core defmt build" "target not installed (rustup target add thumbv7em-none-eabihf)"
fi

# ---- agent-ffi: the no_std C library for bare metal. Its C tests (strict
# compiles, ASan/UBSan, TSan, valgrind, no heap calls, pkg-config install)
# and the header drift check run in `cargo test --workspace` above.
echo "== libedge_agent.a builds for bare metal (no_std, panic traps) and needs nothing undefined"
llvm_nm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-nm"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    cargo build -p agent-ffi --release --target "$target" --no-default-features --features crc-table1,drop-oldest 2>&1 | grep -v "dropping unsupported crate type"
    lib="target/$target/release/libedge_agent.a"
    if [ -x "$llvm_nm" ]; then
      undefined=$(comm -23 <("$llvm_nm" -u "$lib" 2>/dev/null | awk 'NF==2 {print $2}' | sort -u) \
                           <("$llvm_nm" --defined-only "$lib" 2>/dev/null | awk 'NF==3 {print $3}' | sort -u))
      if [ -n "$undefined" ]; then echo "$lib needs undefined symbols:"; echo "$undefined"; exit 1; fi
      echo "$lib: $("$llvm_nm" --defined-only "$lib" 2>/dev/null | grep -c ' T ea_') ea_* functions, no undefined symbols"
    else
      skip_or_fail "libedge_agent.a symbol check ($target)" "llvm-nm not installed (rustup component add llvm-tools)"
    fi
  else
    skip_or_fail "agent-ffi bare-metal build ($target)" "target not installed (rustup target add $target)"
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
if cargo +nightly --version >/dev/null 2>&1; then
  FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz-smoke.sh
else
  skip_or_fail "fuzz smoke" "no nightly toolchain (rustup toolchain install nightly)"
fi

# The closing summary over every cargo test run above (a failure has already
# stopped the script with a non-zero exit): counts, then every step or test
# skipped for a missing tool, with its reason (none under CI: there a
# missing tool fails).
skips=$(sort -u "$EDGE_SKIP_LOG" | grep -c . || true)
awk -v s="$skips" '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d ignored, %d skipped for a missing tool\n", p, f, i, s }' "$log"
if [ "$skips" -gt 0 ]; then
  echo "skipped (tool missing; under CI=true these fail):"
  sort -u "$EDGE_SKIP_LOG" | sed 's/^/  /'
fi
