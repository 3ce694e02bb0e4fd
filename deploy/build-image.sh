#!/usr/bin/env bash
# Builds the `sluice:latest` Docker image from local files only (no base image is pulled):
# the release binary plus the shared libraries it links, on an empty (scratch) root.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin sluice
target="${CARGO_TARGET_DIR:-target}"
binary="$target/release/sluice"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/tmp" "$context/rootfs/data" "$context/rootfs/etc"
cp "$binary" "$context/rootfs/usr/local/bin/sluice"
# Every shared library the binary needs, at the same paths, and the dynamic loader.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$context/rootfs$(dirname "$lib")"
  cp -L "$lib" "$context/rootfs$lib"
done
# Name resolution inside containers (service names on the compose network).
cp /etc/nsswitch.conf "$context/rootfs/etc/" 2>/dev/null || echo "hosts: files dns" > "$context/rootfs/etc/nsswitch.conf"
for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
  [ -e "$lib" ] && mkdir -p "$context/rootfs$(dirname "$lib")" && cp -L "$lib" "$context/rootfs$lib"
done
cp deploy/Dockerfile "$context/Dockerfile"
docker build -q -t sluice:latest "$context"
echo "built sluice:latest"
