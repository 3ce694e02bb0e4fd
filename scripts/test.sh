#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, golden SQL tests and the multi-process
# cluster tests (they start real jobmanager and task manager processes on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo test --workspace --locked
