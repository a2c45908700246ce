#!/usr/bin/env bash
# The main job on this machine: set up, build, start the whole mesh (router, two
# expert hosts, mtp-draft, attention) with the trained demo model
# (assets/moemesh-kjv, made by tools/train) and chat with it through the mesh.
# Usage: scripts/run.sh ["your message"]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL="${MOEMESH_MODEL:-assets/moemesh-kjv/bf16}"
exec build/services/moemesh up --model "$MODEL" --chat "${1:-Hello! Who are you?}" --max-new-tokens 64
