#!/usr/bin/env bash
# Builds Sluice's Docker images from local files; no image is pulled from a registry:
#
#   sluice-base:<suite>      a Debian minbase root made here with debootstrap (from the
#                            machine's Debian mirror) and imported: a shell, libc, CA certs
#   sluice:latest            the base + the stripped `sluice` binary, the libraries it links
#                            that the base lacks, ONNX Runtime and the repository's models
#   sluice-services:latest   the base + PostgreSQL, the noida-db Kafka-protocol broker and
#                            moto's S3 server, for the compose cluster and its tests
#
# Each image carries a label with the hash of what went into it and is rebuilt only when
# that changes, so a second run takes seconds.
#
#   deploy/build-image.sh                  # the release binary (cargo build --release)
#   deploy/build-image.sh --profile dev    # the binary `cargo build` made
#   deploy/build-image.sh --binary PATH    # that binary (the chaos tests pass theirs)
#
# The binary is stripped in the image; its debug info stays beside the binary on the host
# (`sluice.debug`, linked with a debuglink), for symbolizing a core file or a backtrace.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
binary=""
case "${1:-}" in
  --profile) profile="${2:?--profile needs release or dev}" ;;
  --binary) binary="${2:?--binary needs the path of a sluice binary}" ;;
  "") ;;
  *) echo "usage: $0 [--profile release|dev | --binary PATH]" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-target}"
if [ -z "$binary" ]; then
  case "$profile" in
    release) cargo build --release --locked --bin sluice; binary="$target/release/sluice" ;;
    dev) cargo build --locked --bin sluice; binary="$target/debug/sluice" ;;
    *) echo "unknown profile '$profile': use release or dev" >&2; exit 2 ;;
  esac
fi

suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

label() { docker image inspect -f '{{index .Config.Labels "sluice.hash"}}' "$1" 2>/dev/null || true; }
hash_of() { sha256sum | cut -c1-24; }

need() { # COMMAND PACKAGE: installs PACKAGE from Debian if COMMAND is missing
  command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

# A Debian root with `packages` (comma-separated) in `dir`, trimmed of documentation.
make_root() { # DIR PACKAGES
  need debootstrap debootstrap
  debootstrap --variant=minbase --include="$2" "$suite" "$1" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* \
    "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*
}

# Imports DIR as IMAGE, labelled with HASH, with PATH set (and EXTRA_PATH first).
import_root() { # DIR IMAGE HASH [EXTRA_PATH]
  local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  tar -C "$1" -c . | docker import --change "LABEL sluice.hash=$3" --change "ENV PATH=${4:+$4:}$path" - "$2" >/dev/null
}

# 1. The base.
base="sluice-base:$suite"
base_hash=$(printf '%s\n' "$suite" "$mirror" ca-certificates,procps | hash_of)
if [ "$(label "$base")" != "$base_hash" ]; then
  echo "building $base with debootstrap ($suite from $mirror)"
  make_root "$work/base" ca-certificates,procps
  import_root "$work/base" "$base" "$base_hash"
  rm -rf "$work/base"
fi

# 2. Sluice: the stripped binary, the libraries it links that the base lacks, ONNX Runtime.
context="$work/sluice"
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/usr/local/lib/sluice" "$context/rootfs/opt/sluice"
objcopy --only-keep-debug "$binary" "$binary.debug"
objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$binary.debug" "$binary" "$context/rootfs/usr/local/bin/sluice"
docker run --rm "$base" sh -c 'ls /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu' >"$work/base-libs" 2>/dev/null
for lib in $(ldd "$binary" | grep -o '/[^ ]*\.so[^ ]*'); do
  grep -qx "$(basename "$lib")" "$work/base-libs" && continue
  cp -L "$lib" "$context/rootfs/usr/local/lib/sluice/"
done
ort_env=""
ort=$(python3 -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))' 2>/dev/null)/capi
for lib in "$ort"/libonnxruntime.so.1.*; do
  [ -e "$lib" ] || continue
  cp "$lib" "$context/rootfs/usr/local/lib/sluice/"
  ort_env="ORT_DYLIB_PATH=/usr/local/lib/sluice/$(basename "$lib")"
done
cp -r models examples "$context/rootfs/opt/sluice/"
cat >"$context/Dockerfile" <<EOF
FROM $base
COPY rootfs/ /
ENV LD_LIBRARY_PATH=/usr/local/lib/sluice RUST_LOG=info $ort_env
WORKDIR /opt/sluice
ENTRYPOINT ["/usr/local/bin/sluice"]
EOF
sluice_hash=$( (cat "$context/Dockerfile"; find "$context/rootfs" -type f -print0 | sort -z | xargs -0 sha256sum | cut -c1-64) | hash_of)
if [ "$(label sluice:latest)" != "$sluice_hash" ]; then
  echo "LABEL sluice.hash=$sluice_hash" >>"$context/Dockerfile"
  docker build -q -t sluice:latest "$context" >/dev/null
fi

# 3. The services: PostgreSQL (Debian's), the broker and the S3 server (from PyPI, in a
#    virtual environment inside the image).
noida=$(python3 -c 'import noida_db, os; print(os.path.dirname(noida_db.__file__))')/noida-db
services_hash=$(printf '%s\n' "$base_hash" "$(sha256sum "$noida" | cut -c1-64)" postgresql moto==5.2.6 v1 | hash_of)
if [ "$(label sluice-services:latest)" != "$services_hash" ]; then
  echo "building sluice-services:latest (PostgreSQL, noida-db, moto)"
  root="$work/services"
  make_root "$root" ca-certificates,procps,postgresql,python3-venv
  cp "$noida" "$root/usr/local/bin/noida-db"
  # pip in the new root uses the machine's network settings and certificates.
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" python3 -m venv /opt/venv
  chroot "$root" env -u PIP_FIND_LINKS PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /opt/venv/bin/pip install -q --no-cache-dir "moto[server,s3]==5.2.6"
  : >"$root/etc/resolv.conf"
  import_root "$root" sluice-services:latest "$services_hash" /opt/venv/bin:/usr/lib/postgresql/15/bin
  rm -rf "$root"
fi

docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^sluice(-base|-services)?:'
