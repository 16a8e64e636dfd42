#!/usr/bin/env bash
# Builds test/spiffe-client (a Workload API client on go-spiffe) into
# $SLUICE_CACHE/bin, named by a hash of its sources so a change rebuilds it and
# an unchanged tree is a no-op. Prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SLUICE_CACHE:-/var/cache/sluice}
src="$here/test/spiffe-client"
bin="$cache/bin"
mkdir -p "$bin"
# The same module and build caches as install-kube.sh.
export GOPATH="$cache/go" GOCACHE="$cache/go-build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
hash=$(cd "$src" && cat go.mod go.sum *.go | sha256sum | cut -c1-16)
out="$bin/spiffe-client-$hash"
if [ ! -x "$out" ]; then
  printf 'install-spiffe-client: building %s\n' "$out" >&2
  (cd "$src" && go build -trimpath -o "$out.tmp" .)
  mv "$out.tmp" "$out"
fi
ln -sf "$out" "$bin/spiffe-client"
echo "$out"
