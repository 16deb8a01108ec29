#!/usr/bin/env bash
# Runs every check and test: formatting, lints, Rust unit and integration tests (real Xvfb,
# real encoders, real WebRTC over loopback) and the browser tests (Debian Chromium driven by
# playwright-core). Installs what is missing first. Set EDGEDESK_SLOW_TESTS=1 for soak/8K runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# A clean CI clone gains nothing from incremental caches (gigabytes on disk): off there.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

step() { printf '\n=== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "cargo clippy --features nvenc (the NVENC path stays compiled)"
cargo clippy -p edgedesk-codec --all-targets --features nvenc -- -D warnings
step "cargo test"
cargo test --workspace
step "browser tests (client-web, headless Chromium)"
cargo build -p edgedesk-signaling --bin edgedesk -p edgedesk-host --bins
export EDGEDESK_BIN="$root/target/debug/edgedesk"
(cd client-web && node --test tests/)
