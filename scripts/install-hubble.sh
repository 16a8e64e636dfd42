#!/usr/bin/env bash
# Builds the real hubble CLI, which the observe tests run against sluice's
# Observer API, from the Go module github.com/cilium/cilium (path hubble/),
# cached under $SLUICE_CACHE (default /var/cache/sluice) keyed by version.
# The module's go.mod carries replace directives, so `go install pkg@version`
# refuses it; a throwaway module that requires it builds it instead.
# Idempotent: skipped when the pinned binary is already there.
set -euo pipefail
cache=${SLUICE_CACHE:-/var/cache/sluice}
# Keep in step with scripts/gen-hubble-protos.mjs, which generates the server side from the same module.
HUBBLE_VERSION=1.20.2
bin="$cache/bin"
out="$bin/hubble-v$HUBBLE_VERSION"
mkdir -p "$bin"
export GOPATH="$cache/go" GOCACHE="$cache/go-build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf 'install-hubble: %s\n' "$*" >&2; }

if [ ! -x "$out" ]; then
  mod="$cache/hubble-build-v$HUBBLE_VERSION"
  if [ ! -f "$mod/go.sum" ]; then
    log "resolving github.com/cilium/cilium v$HUBBLE_VERSION"
    rm -rf "$mod" && mkdir -p "$mod"
    printf 'module sluice.test/hubblebuild\n\ngo 1.24\n\nrequire github.com/cilium/cilium v%s\n' "$HUBBLE_VERSION" >"$mod/go.mod"
    # A tools file keeps the CLI's package (and so its dependencies) in the module graph for tidy.
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/cilium/cilium/hubble"\n' >"$mod/tools.go"
    (cd "$mod" && go mod tidy)
  fi
  log "building hubble v$HUBBLE_VERSION (slow the first time; cached in $cache)"
  (cd "$mod" && go build -ldflags "-X github.com/cilium/cilium/hubble/pkg.Version=$HUBBLE_VERSION" -o "$out.tmp" github.com/cilium/cilium/hubble)
  mv "$out.tmp" "$out"
fi
ln -sf "$out" "$bin/hubble"
log "ready: $("$bin/hubble" version)"
echo "$out"
