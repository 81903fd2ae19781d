#!/usr/bin/env bash
# Worst-case stack of each entry point of the sans-IO agent on a Cortex-M4
# (thumbv7em-none-eabihf, opt-level "z", LTO, crc-table1, as size-report.sh
# builds it). Builds size-probe's stack-probe binary (every entry point
# behind its own #[inline(never)] wrapper) with -Z emit-stack-sizes, then
# scripts/stack-report.py sums frames over the call graph read from the
# disassembly. If qemu-system-arm is installed, the same image also runs on
# QEMU's mps2-an386 (a Cortex-M4) and reports each entry point's painted
# high-water mark next to the static bound.
# If the target, the llvm tools, python3 or qemu-system-arm are missing:
# fails under CI (CI=true), else skips that part with a notice
# (scripts/skip.sh; without QEMU only the static bound is computed).
# Non-zero if the graph has recursion or an unresolved indirect
# call (the numbers would then be lower bounds), or the painted run fails.
set -euo pipefail
. "$(dirname "$0")/skip.sh"
cd "$(dirname "$0")/../size-probe"
target=${STACK_TARGET:-thumbv7em-none-eabihf}
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  skip_or_fail stack-report "target $target not installed (rustup target add $target)"
  exit 0
fi
objdump=
for f in "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-objdump; do
  if [ -x "$f" ]; then objdump=$f; break; fi
done
if [ -z "$objdump" ]; then
  skip_or_fail stack-report "llvm-objdump not found (rustup component add llvm-tools)"
  exit 0
fi
if ! command -v python3 >/dev/null; then
  skip_or_fail stack-report "python3 not found"
  exit 0
fi
# RUSTC_BOOTSTRAP: -Z emit-stack-sizes is unstable; this is a stable toolchain.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Z emit-stack-sizes -C link-arg=-T$PWD/stack-probe.ld" \
  cargo build --quiet --release --target "$target" --no-default-features --features crc-table1,stack-probe \
  --bin stack-probe --target-dir ../target/stack-probe
elf=../target/stack-probe/$target/release/stack-probe

painted=()
if command -v qemu-system-arm >/dev/null; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  if ! timeout 60 qemu-system-arm -M mps2-an386 -display none -monitor none -serial none \
      -chardev file,id=semi,path="$out" -semihosting-config enable=on,target=native,chardev=semi \
      -kernel "$elf"; then
    echo "stack-report: the painted run on QEMU failed:"
    cat "$out"
    exit 1
  fi
  painted=(--painted "$out")
  echo "painted run on QEMU mps2-an386 (one session script; a lower bound for each entry point):"
  { grep -v '^stack_' "$out" || true; } | sed 's/^/    /'
  echo
else
  skip_or_fail "stack-report (painted run)" "qemu-system-arm not installed"
fi
python3 ../scripts/stack-report.py --objdump "$objdump" "${painted[@]}" "$elf"
