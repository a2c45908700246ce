#!/usr/bin/env bash
# The main job on this machine: set up, build, make the demo model on first run, run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL="${MOEMESH_MODEL:-models/demo}"
if [ ! -f "$MODEL/config.json" ]; then
  build/services/moemesh make-model --preset demo --dtype fp8 --seed 1 --out "$MODEL"
fi
exec build/services/moemesh generate --model "$MODEL" --prompt-ids 0,3476,477,260,1979 --max-new-tokens 64 "$@"
