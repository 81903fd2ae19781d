#!/usr/bin/env bash
# Builds examples/firmware for QEMU's mps2-an386 (Cortex-M4) and reports the
# library's share of the image from its map (scripts/firmware-size.py, which
# fails past its budget).
#
#   bash scripts/firmware-build.sh [OUT_DIR]      # default target/firmware
#
# The library is built with README's documented command (one LTO'd object:
# `cargo rustc --crate-type staticlib`), with the rustup target
# thumbv7em-none-eabihf. Where that target is not installed but Debian's
# rustc-web, cargo-web and rust-web-src are (`apt-get install rustc-web
# cargo-web rust-web-src`: a toolchain with the library sources), the same
# command runs with that toolchain and `-Z build-std=core` instead.
# Exit status 2 (with a notice) when neither toolchain, arm-none-eabi-gcc or
# python3 is there; 1 on a build failure or a blown budget.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/firmware}
target=thumbv7em-none-eabihf
libdir=$root/target/firmware-lib
for tool in arm-none-eabi-gcc python3 make; do
  if ! command -v "$tool" >/dev/null; then
    echo "firmware-build: $tool not found; skipped"
    exit 2
  fi
done
cmd=(cargo rustc -p agent-ffi --profile firmware --no-default-features --features crc-notable
     --target "$target" --crate-type staticlib --target-dir "$libdir")
cd "$root"
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "firmware-build: ${cmd[*]}"
  "${cmd[@]}"
elif [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ]; then
  echo "firmware-build: rustup has no $target; Debian's toolchain with -Z build-std=core"
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo "${cmd[@]:1}" \
    -Z build-std=core,compiler_builtins -Z build-std-features=compiler-builtins-mem
else
  echo "firmware-build: no $target (rustup target add $target, or apt-get install rustc-web cargo-web rust-web-src); skipped"
  exit 2
fi
lib=$libdir/$target/firmware/libedge_agent.a
make -s -C examples/firmware LIB="$lib" OUT="$out"
python3 scripts/firmware-size.py "$out/firmware.map" "$out/firmware.elf"
