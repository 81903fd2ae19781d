#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target in fuzz/ and runs each for a
# short while, after replaying its saved regression inputs. Exits non-zero if
# any target crashes (panics, fails a check, times out or runs out of memory).
#
#   scripts/fuzz-smoke.sh                 # 20 s per target
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh
#   FUZZ_TARGETS="ring_ops agent_ops" scripts/fuzz-smoke.sh
#   FUZZ_SANITIZER=address scripts/fuzz-smoke.sh
#   FUZZ_TARGET_DIR=target/asan ...       # own build dir (two runs side by side)
#
# FUZZ_SANITIZER defaults to `none`: agent-core has no unsafe code, and
# without ASan the targets run 2-3x faster. Use `address` to also check the
# unsafe code in dependencies (heapless, postcard).
#
# Needs a nightly toolchain (prints a notice and exits 0 without one) and
# cargo-fuzz (installed with `cargo install cargo-fuzz --locked` if missing).
# Crashes are written to fuzz/artifacts/<target>/; logs to
# fuzz/artifacts/smoke-<target>.log. The corpus grows in fuzz/corpus/<target>/
# (not in git). Inputs under fuzz/regressions/<target>/ are replayed first.

set -euo pipefail

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: no nightly toolchain (rustup toolchain install nightly); skipping the fuzz smoke test"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz missing; installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
echo "fuzz-smoke: $(cargo +nightly --version), $(cargo fuzz --version)"

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
dir_args=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then dir_args=(--target-dir "$FUZZ_TARGET_DIR"); fi
start=$SECONDS
echo "fuzz-smoke: building $(echo $targets | wc -w) targets (sanitizer: $FUZZ_SANITIZER)"
cargo +nightly fuzz build "${dir_args[@]}" --sanitizer "$FUZZ_SANITIZER"
echo "fuzz-smoke: built in $((SECONDS - start)) s"

mkdir -p artifacts
failed=()
for t in $targets; do
    log="artifacts/smoke-$t${FUZZ_LOG_SUFFIX:-}.log"
    # 1. Saved regressions: every input must pass.
    regressions=()
    if [ -d "regressions/$t" ]; then
        while IFS= read -r -d '' f; do regressions+=("$f"); done \
            < <(find "regressions/$t" -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
    fi
    if [ ${#regressions[@]} -gt 0 ]; then
        echo "fuzz-smoke: $t: replaying ${#regressions[@]} regression input(s)"
        if ! cargo +nightly fuzz run "${dir_args[@]}" --sanitizer "$FUZZ_SANITIZER" "$t" "${regressions[@]}" \
            -- -timeout=25 >"$log.regressions" 2>&1; then
            echo "fuzz-smoke: $t: REGRESSION INPUT FAILS (see fuzz/$log.regressions)"
            grep -m1 -A3 "panicked at" "$log.regressions" || tail -n 20 "$log.regressions"
            failed+=("$t (regression)")
            continue
        fi
    fi
    # 2. Fuzz for FUZZ_SECONDS.
    echo "fuzz-smoke: $t: fuzzing for $FUZZ_SECONDS s"
    if cargo +nightly fuzz run "${dir_args[@]}" --sanitizer "$FUZZ_SANITIZER" "$t" \
        -- -max_total_time="$FUZZ_SECONDS" -timeout=25 -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed "s/^/fuzz-smoke: $t: /"
    elif grep -q "failed to build fuzz script" "$log"; then
        # The sources changed under us since the build step.
        echo "fuzz-smoke: $t: BUILD FAILED (see fuzz/$log)"
        grep -m1 -A6 "^error" "$log" || tail -n 30 "$log"
        failed+=("$t (build)")
    else
        echo "fuzz-smoke: $t: CRASH (see fuzz/$log)"
        grep -m1 -A3 "panicked at" "$log" || tail -n 30 "$log"
        grep -E "Test unit written to|^artifact_prefix" "$log" || true
        failed+=("$t")
    fi
done

echo "fuzz-smoke: done in $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz-smoke: all targets passed"
