#!/usr/bin/env bash
# Flash and RAM cost of the whole sans-IO agent on a Cortex-M4
# (thumbv7em-none-eabihf, opt-level "z", LTO), for each CRC table choice.
# Prints one line per variant. If the target or llvm-size is unavailable:
# fails under CI (CI=true), else exits 0 with a notice (scripts/skip.sh).
# Fails if crc-table1's .text grows past
# SIZE_BUDGET_TEXT (default 15 394 B: 3 % above the figure in
# BENCHMARKS.md, so a regression stops CI and a toolchain's drift does not).
set -euo pipefail
. "$(dirname "$0")/skip.sh"
cd "$(dirname "$0")/../size-probe"
target=${SIZE_TARGET:-thumbv7em-none-eabihf}
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  skip_or_fail size-report "target $target not installed (rustup target add $target)"
  exit 0
fi
size_tool=$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-size 2>/dev/null | head -1 || true)
if [ -z "$size_tool" ]; then
  skip_or_fail size-report "llvm-size not found (rustup component add llvm-tools)"
  exit 0
fi
printf '%-12s %8s %8s %8s %8s\n' variant text rodata data bss
for v in ${SIZE_VARIANTS:-crc-notable crc-table1 crc-table16}; do
  cargo build --quiet --release --target "$target" --no-default-features --features "$v" \
    --target-dir ../target/size-probe
  elf=../target/size-probe/$target/release/size-probe
  read -r text rodata data bss < <("$size_tool" -A "$elf" | awk '
    $1==".text"{t=$2} $1==".rodata"{r=$2} $1==".data"{d=$2} $1==".bss"{b=$2}
    END{print t+0, r+0, d+0, b+0}')
  printf '%-12s %8d %8d %8d %8d   (flash %d B, static RAM incl. probe buffers %d B)\n' \
    "$v" "$text" "$rodata" "$data" "$bss" $((text + rodata + data)) $((data + bss))
  if [ "$v" = crc-table1 ]; then
    budget=${SIZE_BUDGET_TEXT:-15394}
    if [ "$text" -gt "$budget" ]; then
      echo "size-report: crc-table1 .text is $text B, over the budget of $budget B (scripts/flash-profile.sh shows where it went)" >&2
      exit 1
    fi
  fi
done
