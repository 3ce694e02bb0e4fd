#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, golden SQL tests, the multi-process
# cluster and checkpoint tests (real jobmanager and task manager processes on loopback),
# the Kafka tests (each starts its own noida-db broker) and the jdbc tests (each starts its
# own PostgreSQL server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo test --workspace --locked
