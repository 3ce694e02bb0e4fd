#!/usr/bin/env bash
# Installs the system packages Sluice builds with, on Debian 12 (idempotent, quiet when
# everything is present). Rust comes from rustup.
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
# RocksDB (the state backend) links Debian's librocksdb; its bindings need libclang.
[ -e /usr/include/rocksdb/c.h ] || missing+=(librocksdb-dev)
ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
# PostgreSQL for the jdbc connector's tests (each test runs its own server with initdb and
# pg_ctl; pg_stat_statements comes with the server package) and psql to set them up.
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# Prometheus (the server and promtool) for the observability tests: promtool checks
# /metrics, and a real Prometheus scrapes it. curl for the REST tests.
# (without its recommended exporters; the service the package starts is stopped: the
# tests run their own).
lean=()
command -v promtool >/dev/null 2>&1 || lean+=(prometheus)
# Chromium and its WebDriver for the dashboard's browser tests (driven by Selenium).
command -v chromium >/dev/null 2>&1 || lean+=(chromium)
command -v chromedriver >/dev/null 2>&1 || lean+=(chromium-driver)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# debootstrap makes the Docker images' Debian base (deploy/build-image.sh; the chaos suite
# builds them), and docker-compose runs their cluster. Docker itself is the machine's.
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ((${#lean[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${lean[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
  $sudo service prometheus stop >/dev/null 2>&1 || true
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
for tool in fmt clippy; do
  cargo "$tool" --version >/dev/null 2>&1 || { echo "cargo $tool not found: rustup component add rustfmt clippy" >&2; exit 1; }
done
# A Kafka-protocol broker for the Kafka tests (they start their own instances): noida-db,
# from PyPI, which hides aborted transactions from read_committed consumers.
# PyPI packages are pinned (Debian's packages above are those of the stable release, which
# changes them only for security fixes, so they are not pinned: old builds leave the mirror).
pip_pinned() { # NAME VERSION: installs NAME==VERSION unless exactly that version is there
  python3 -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null ||
    python3 -m pip install -q --disable-pip-version-check "$1==$2"
}
pip_pinned noida-db 0.2.3
# ONNX Runtime for the `local` model provider (loaded at run time from the wheel).
pip_pinned onnxruntime 1.31.1
# pyarrow for the generic-python provider's workers (batches reach Python as Arrow), and
# VADER, the sentiment model (its lexicon ships in the wheel) of its example and tests.
pip_pinned pyarrow 26.0.1
pip_pinned vaderSentiment 3.3.2
# fastavro: the independent Avro reader and writer of the format tests (pyarrow is their
# Parquet one).
pip_pinned fastavro 1.12.1
# scikit-learn, for the generic-python example trained by a script (fraud_sklearn).
pip_pinned scikit-learn 1.9.1
# The OpenAPI 3.0 schema validator the REST tests check every answer with.
pip_pinned openapi-schema-validator 0.9.0
# Selenium drives Debian's chromium through chromedriver in the dashboard tests (4.50: the
# newest whose dependencies the package mirror has).
pip_pinned selenium 4.50.0
# moto's S3-compatible server (conditional writes included) for the object storage tests:
# each test starts its own.
{ python3 -m pip show moto 2>/dev/null | grep -x "Version: 5.2.6" >/dev/null && python3 -c 'import flask_cors' 2>/dev/null; } ||
  python3 -m pip install -q --disable-pip-version-check "moto[server,s3]==5.2.6"
