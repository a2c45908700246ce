#!/bin/sh
# The runtime image's one setup step, shared by Dockerfile.cpu and Dockerfile.package:
# the shared libraries the moemesh binary links (from Debian's archive, through the
# base image's apt sources), its user, and the folders compose and Helm mount.
set -eu
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  libcaf-core0.17 libzmq5 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
  libspdlog1.10 libfmt9 libpcre2-8-0 libssl3 ca-certificates
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin moemesh
# Named volumes start as copies of these (owner included), so the non-root roles can write them.
mkdir -p /models /etc/moemesh-keys
chown 10001:10001 /models /etc/moemesh-keys
