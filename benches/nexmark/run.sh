#!/usr/bin/env bash
# Runs the Nexmark suite on Sluice (see run.py); builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin sluice >&2
exec python3 benches/nexmark/run.py "$@"
