#!/usr/bin/env bash
# Flash of the sans-IO agent on a Cortex-M4 (as scripts/size-report.sh
# builds it: thumbv7em-none-eabihf, opt-level "z", LTO, crc-table1) by
# source function, inlined code included (scripts/flash-profile.py).
#
#   bash scripts/flash-profile.sh                       # by module
#   bash scripts/flash-profile.sh --by function --outer-crate agent_core
#
# Exits 0 with a notice if the target, llvm-size or pyelftools is missing.
set -euo pipefail
cd "$(dirname "$0")/../size-probe"
target=${SIZE_TARGET:-thumbv7em-none-eabihf}
features=${SIZE_FEATURES:-crc-table1}
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "flash-profile: target $target not installed; skipped"
  exit 0
fi
size_tool=$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-size 2>/dev/null | head -1 || true)
if [ -z "$size_tool" ] || ! python3 -c 'import elftools' 2>/dev/null; then
  echo "flash-profile: needs llvm-size (rustup component add llvm-tools) and pyelftools (pip install pyelftools==0.33); skipped"
  exit 0
fi
build() { # target-dir debug-level
  CARGO_PROFILE_RELEASE_DEBUG=$2 cargo build --quiet --release --target "$target" \
    --no-default-features --features "$features" --target-dir "$1"
  "$size_tool" -A "$1/$target/release/size-probe" | awk '$1==".text"{print $2}'
}
plain=$(build ../target/size-probe 0)
with_debug=$(build ../target/size-probe-debug 2)
if [ "$plain" != "$with_debug" ]; then
  echo "flash-profile: .text is $with_debug B with debug info, $plain B without: the profile would not describe the real image" >&2
  exit 1
fi
python3 ../scripts/flash-profile.py "../target/size-probe-debug/$target/release/size-probe" "$@"
