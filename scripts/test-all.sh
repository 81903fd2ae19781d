#!/usr/bin/env bash
# Runs every test of the project: the command README.md names.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
# Doc tests (all-targets skips them).
cargo test --workspace --doc
