#!/usr/bin/env bash
# Installs those of the given Debian packages that are not installed yet (one
# apt-get run; nothing when all are there). Used by setup.sh and container_engine.sh.
# Usage: scripts/apt_install.sh WHO PACKAGE...   (WHO prefixes the message)
set -euo pipefail
who="$1"
shift
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "$who: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
