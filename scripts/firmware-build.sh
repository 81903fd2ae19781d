#!/usr/bin/env bash
# Builds examples/firmware for QEMU's mps2-an386 (Cortex-M4) and reports the
# library's share of the image from its map (scripts/firmware-size.py, which
# fails past its budget), then the image's static stack bound
# (scripts/stack-report.py): the library built again with
# `-Z emit-stack-sizes` (the same code: checked function by function) and
# the C files with gcc's `-fstack-usage`, frames summed along the call
# graph read from the image's disassembly. Writes OUT_DIR/stack-bound.txt
# (`name bytes` per entry point; collector/tests/firmware.rs holds the
# painted figures against it).
#
#   bash scripts/firmware-build.sh [OUT_DIR]      # default target/firmware
#   bash scripts/firmware-build.sh --target riscv32imac-unknown-none-elf [OUT_DIR]
#
# --target riscv32imac-unknown-none-elf builds the same main.c for QEMU's
# RISC-V virt machine (examples/firmware/riscv, riscv64-unknown-elf-gcc;
# default OUT_DIR target/firmware-riscv) and reports its size the same way;
# the static stack bound is Arm-only (stack-report.py reads Thumb code), so
# that target stops after the size report.
#
# The library is built with README's documented command (one LTO'd object:
# `cargo rustc --crate-type staticlib`), with the rustup target
# thumbv7em-none-eabihf. Where that target is not installed but Debian's
# rustc-web, cargo-web and rust-web-src are (`apt-get install rustc-web
# cargo-web rust-web-src`: a toolchain with the library sources), the same
# command runs with that toolchain and `-Z build-std=core` instead.
# Exit status 2 (with a notice) when neither toolchain, arm-none-eabi-gcc or
# python3 is there; 1 on a build failure, a blown budget or a stack bound
# that cannot be computed (recursion, an unresolved indirect call). Without
# llvm-objdump (rustup component add llvm-tools) the stack step fails under
# CI and is skipped elsewhere (scripts/skip.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=thumbv7em-none-eabihf
if [ "${1:-}" = --target ]; then target=$2; shift 2; fi
case $target in
  thumbv7em-none-eabihf) cc=arm-none-eabi-gcc; board=examples/firmware; out=${1:-$root/target/firmware} ;;
  riscv32imac-unknown-none-elf) cc=riscv64-unknown-elf-gcc; board=examples/firmware/riscv; out=${1:-$root/target/firmware-riscv} ;;
  *) echo "firmware-build: no board for target $target"; exit 1 ;;
esac
libdir=$root/target/firmware-lib
for tool in "$cc" python3 make; do
  if ! command -v "$tool" >/dev/null; then
    echo "firmware-build: $tool not found; skipped"
    exit 2
  fi
done
cmd=(cargo rustc -p agent-ffi --profile firmware --no-default-features --features crc-notable
     --target "$target" --crate-type staticlib)
cd "$root"
. scripts/skip.sh
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  toolchain=rustup
elif [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ]; then
  toolchain=debian
  echo "firmware-build: rustup has no $target; Debian's toolchain with -Z build-std=core"
else
  echo "firmware-build: no $target (rustup target add $target, or apt-get install rustc-web cargo-web rust-web-src); skipped"
  exit 2
fi
build_lib() { # target-dir [extra RUSTFLAGS, which need RUSTC_BOOTSTRAP]
  local env=()
  if [ -n "${2:-}" ]; then env=(RUSTFLAGS="$2" RUSTC_BOOTSTRAP=1); fi
  if [ "$toolchain" = rustup ]; then
    env "${env[@]}" "${cmd[@]}" --target-dir "$1"
  else
    env "${env[@]}" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo "${cmd[@]:1}" --target-dir "$1" \
      -Z build-std=core,compiler_builtins -Z build-std-features=compiler-builtins-mem
  fi
}
rm -f "$out/stack-bound.txt"
echo "firmware-build: ${cmd[*]}"
build_lib "$libdir"
lib=$libdir/$target/firmware/libedge_agent.a
make -s -C "$board" LIB="$lib" OUT="$out"
python3 scripts/firmware-size.py --target "$target" "$out/firmware.map" "$out/firmware.elf"
if [ "$target" != thumbv7em-none-eabihf ]; then
  echo "firmware-build: no static stack bound for $target (stack-report.py reads Thumb code only)"
  exit 0
fi

# ---- the static stack bound ----------------------------------------------
objdump=
for f in "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-objdump; do
  if [ -x "$f" ]; then objdump=$f; break; fi
done
if [ -z "$objdump" ]; then
  skip_or_fail "firmware stack bound" "llvm-objdump not found (rustup component add llvm-tools)"
  exit 0
fi
echo
echo "firmware-build: the static stack bound (library with -Z emit-stack-sizes, C with -fstack-usage)"
# RUSTC_BOOTSTRAP: -Z emit-stack-sizes is unstable; it adds a section and
# changes no code, which the comparison below checks.
slog=$(mktemp)
trap 'rm -f "$slog"' EXIT
if ! build_lib "$root/target/firmware-lib-stack" "-Z emit-stack-sizes" >"$slog" 2>&1; then
  cat "$slog"
  echo "firmware-build: FAILED: the library with -Z emit-stack-sizes"
  exit 1
fi
slib=$root/target/firmware-lib-stack/$target/firmware/libedge_agent.a
make -s -C examples/firmware LIB="$slib" OUT="$out/stack" EXTRA_CFLAGS=-fstack-usage
# Function sizes, as a sorted list (names differ: RUSTC_BOOTSTRAP makes
# rustc mangle the nightly way, and the outliner numbers differently).
funcs() { arm-none-eabi-nm -S "$1" | awk '$3 ~ /^[Tt]$/ {print $2}' | sort; }
if ! diff <(funcs "$out/firmware.elf") <(funcs "$out/stack/firmware.elf") >/dev/null; then
  echo "firmware-build: FAILED: the image built for the stack bound differs from the documented one:"
  diff <(funcs "$out/firmware.elf") <(funcs "$out/stack/firmware.elf") | head -20
  exit 1
fi
echo "the same function sizes as the documented image"
# The roots: the C entry points and every ea_* call the firmware makes.
roots=(reset_handler main systick_handler uart0_rx_handler)
for f in $(arm-none-eabi-nm "$out/firmware.elf" | awk '$2 == "T" && $3 ~ /^ea_/ {print $3}' | sort); do
  roots+=("$f")
done
python3 scripts/stack-report.py --objdump "$objdump" --triple "$target" \
  --su "$out/stack/firmware.elf-main.su" --su "$out/stack/firmware.elf-log.su" --su "$out/stack/firmware.elf-board.su" \
  --hook-free edge_agent::handle::enter \
  --hook-free edge_agent::handle::leave \
  --bounds "$out/stack-bound.txt" --top 8 \
  "${roots[@]/#/--root=}" "$out/stack/firmware.elf"
python3 scripts/firmware-stack.py "$out/stack-bound.txt" examples/firmware/link.ld
