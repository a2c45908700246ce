#!/usr/bin/env bash
# Builds moemesh and runs every test (the README's test command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600 "$@"
