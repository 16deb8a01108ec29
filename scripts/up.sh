#!/usr/bin/env bash
# Starts a working desktop: a virtual display with a demo app, the host that streams it and
# the HTTP server on localhost, then prints the URL to open. Installs what is missing first.
# Extra arguments go to `edgedesk up` (see `edgedesk up --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo build --release -p edgedesk-signaling --bin edgedesk -p edgedesk-host --bin edgedesk-host
exec target/release/edgedesk up "$@"
