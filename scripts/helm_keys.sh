#!/usr/bin/env bash
# The CURVE keyring of a Helm release as a Secret manifest (docs/SECURITY.md):
# a key pair for every role and for each expert host the StatefulSet may run.
# Usage: scripts/helm_keys.sh FULLNAME HOSTS [SECRET_NAME] | kubectl apply -n NAMESPACE -f -
#   FULLNAME: the chart's fullname (release "demo" → demo-moemesh); HOSTS: expert hosts
#   (expertHost.replicas, or hpa.maxReplicas when autoscaling).
set -euo pipefail
fullname="${1:?usage: $0 FULLNAME HOSTS [SECRET_NAME]}"
hosts="${2:?usage: $0 FULLNAME HOSTS [SECRET_NAME]}"
secret="${3:-$fullname-curve-keys}"
moemesh="${MOEMESH_BIN:-$(dirname "$0")/../build/services/moemesh}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
names=()
for ((i = 0; i < hosts; ++i)); do names+=("$fullname-expert-host-$i"); done
"$moemesh" keygen --dir "$dir" --hosts "$(IFS=,; echo "${names[*]}")" > /dev/null
echo "apiVersion: v1"
echo "kind: Secret"
echo "metadata:"
echo "  name: $secret"
echo "type: Opaque"
echo "data:"
for f in "$dir"/*/*; do
  kind="$(basename "$(dirname "$f")")"
  echo "  $kind--$(basename "$f"): $(base64 -w0 < "$f")"
done
