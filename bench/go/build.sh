#!/usr/bin/env bash
# Builds xds-peer and xds-load into $SLUICE_CACHE/bench-bin/<hash of the Go
# sources, go.mod and go.sum>/ and prints that directory. Idempotent: an
# existing build of the same sources is reused. Modules and the build cache
# live where scripts/install-kube.sh keeps them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SLUICE_CACHE:-/var/cache/sluice}
export GOPATH="$cache/go" GOCACHE="$cache/go-build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
key=$(cd "$here" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
out="$cache/bench-bin/$key"
if [ ! -x "$out/xds-peer" ] || [ ! -x "$out/xds-load" ]; then
  mkdir -p "$out.tmp"
  (cd "$here" && go build -trimpath -o "$out.tmp/" ./cmd/xds-peer ./cmd/xds-load)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out"
