#!/usr/bin/env bash
# Makes a Docker engine available to scripts/images.sh and the container tests:
# installs Debian's docker.io, docker-compose and debootstrap where missing, and
# starts dockerd when none answers (systemd may not run here, as in CI
# containers): overlay2 where the kernel and file system allow it, else vfs.
# Usage: scripts/container_engine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

scripts/apt_install.sh engine docker.io docker-compose debootstrap iptables

docker=/usr/bin/docker
if $docker info >/dev/null 2>&1; then
  echo "engine: dockerd answers ($($docker info -f '{{.ServerVersion}}, {{.Driver}}'))"
  exit 0
fi
log=/var/log/moemesh-dockerd.log
for driver in overlay2 vfs; do
  $SUDO sh -c "nohup dockerd --storage-driver=$driver >$log 2>&1 &"
  for _ in $(seq 60); do
    $docker info >/dev/null 2>&1 && break
    pgrep -x dockerd >/dev/null || break
    sleep 0.5
  done
  if $docker info >/dev/null 2>&1; then
    echo "engine: started dockerd ($($docker info -f '{{.ServerVersion}}, {{.Driver}}'); log $log)"
    exit 0
  fi
  echo "engine: dockerd with $driver did not start:"; tail -n 5 "$log"
  $SUDO pkill -x dockerd || true
  sleep 1
done
echo "engine: no Docker daemon could be started" >&2
exit 1
