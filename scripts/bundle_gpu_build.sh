#!/usr/bin/env bash
# Makes a CUDA build folder runnable on a GPU machine that has CUDA but none of
# our Debian libraries (CAF, ZeroMQ, prometheus-cpp, spdlog, fmt, ...): copies
# every shared library the GPU tests, GPU benchmarks and the moemesh binary
# load, except the C library's own and (unless --with-cuda-libs) CUDA's, into
# <build>/lib. The binaries already look there (rpath $ORIGIN/../lib, set by
# cmake/Dependencies.cmake in CUDA builds); <build>/lib/env.sh sets
# LD_LIBRARY_PATH as well, for anything built before that rpath existed.
#
# Usage: scripts/bundle_gpu_build.sh [build-dir=build-cuda] [--with-cuda-libs]
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-cuda
with_cuda=0
for arg in "$@"; do
  case "$arg" in
    --with-cuda-libs) with_cuda=1 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) build=$arg ;;
  esac
done
[ -d "$build" ] || { echo "no build folder $build" >&2; exit 1; }

mapfile -t bins < <(find "$build/tests" "$build/bench" "$build/services" -maxdepth 1 -type f -perm -u+x \
  \( -name 'test_gpu_*' -o -name 'bench_gpu_*' -o -name moemesh \) 2>/dev/null | sort)
[ "${#bins[@]}" -gt 0 ] || { echo "no GPU test or bench binaries in $build (build them first)" >&2; exit 1; }

# Libraries every Linux machine has (glibc and the dynamic loader), and CUDA's,
# which must match the GPU machine's driver.
system_re='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil)\.so'
cuda_re='^(libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia-)[^/]*\.so'

mkdir -p "$build/lib"
copied=0
while read -r name path; do
  [ -n "$path" ] && [ -f "$path" ] || continue
  [[ "$name" =~ $system_re ]] && continue
  if [[ "$name" =~ $cuda_re ]] && [ "$with_cuda" = 0 ]; then continue; fi
  if [ ! -e "$build/lib/$name" ]; then
    cp -L "$path" "$build/lib/$name"
    copied=$((copied + 1))
  fi
done < <(for b in "${bins[@]}"; do ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'; done | sort -u)

cat > "$build/lib/env.sh" <<'ENV'
# source this on the GPU machine: the bundled libraries first, then the system's.
export LD_LIBRARY_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ENV
echo "bundled $copied libraries into $build/lib for ${#bins[@]} binaries:"
ls "$build/lib"
