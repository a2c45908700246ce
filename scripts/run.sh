#!/usr/bin/env bash
# The main job on this machine: set up, build, make the demo model on first run
# (random weights, DeepSeek-V3's real tokenizer), start the whole mesh (router,
# two expert hosts, mtp-draft, attention) and chat with it through the mesh.
# Usage: scripts/run.sh ["your message"]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL="${MOEMESH_MODEL:-models/demo}"
if [ ! -f "$MODEL/config.json" ]; then
  build/services/moemesh make-model --preset demo --dtype fp8 --seed 1 --out "$MODEL"
fi
exec build/services/moemesh up --model "$MODEL" --chat "${1:-Hello! Who are you?}" --max-new-tokens 64
