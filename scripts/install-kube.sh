#!/usr/bin/env bash
# Installs the real Kubernetes parts the cluster-mode tests run against, cached
# under $SLUICE_CACHE (default /var/cache/sluice): etcd from Debian,
# kube-apiserver and kubectl built from the Go module k8s.io/kubernetes (its
# staging modules pinned by replace directives), and helm from helm.sh/helm/v3.
# Idempotent: each step is skipped when its pinned binary is already there.
set -euo pipefail
cache=${SLUICE_CACHE:-/var/cache/sluice}
K8S_VERSION=1.34.4
HELM_VERSION=3.21.4
# Gateway API CRDs are the user's to install; tests install the standard channel of this release.
GATEWAY_API_VERSION=1.2.1
bin="$cache/bin"
mkdir -p "$bin"
export GOPATH="$cache/go" GOCACHE="$cache/go-build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf 'install-kube: %s\n' "$*" >&2; }

dpkg -s etcd-server >/dev/null 2>&1 || { log "apt-get install etcd-server"; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }

build_k8s() {
  local tool=$1 out="$bin/$1-v$K8S_VERSION"
  [ -x "$out" ] && return 0
  local mod="$cache/k8s-build-$K8S_VERSION"
  if [ ! -f "$mod/go.sum" ]; then
    log "resolving k8s.io/kubernetes v$K8S_VERSION with pinned staging modules"
    rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
    go mod init sluice.local/k8s-build >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    # k8s.io/kubernetes points its staging modules at ./staging; pin each to its published v0.x.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 v0.'"${K8S_VERSION#1.}"'#p' "$gomod" >>go.mod
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
  fi
  cd "$mod"
  log "building $tool v$K8S_VERSION (slow the first time; cached in $cache)"
  # Stamp the real version; unstamped builds report v0.0.0-master and trip skew checks.
  local v=k8s.io/component-base/version
  go build -trimpath -ldflags "-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")" \
    -o "$out.tmp" "k8s.io/kubernetes/cmd/$tool"
  mv "$out.tmp" "$out"
}

build_k8s kube-apiserver
build_k8s kubectl
ln -sf "$bin/kube-apiserver-v$K8S_VERSION" "$bin/kube-apiserver"
ln -sf "$bin/kubectl-v$K8S_VERSION" "$bin/kubectl"

if [ ! -x "$bin/helm-v$HELM_VERSION" ]; then
  log "building helm v$HELM_VERSION"
  GOBIN="$cache/helm-$HELM_VERSION" go install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$cache/helm-$HELM_VERSION/helm" "$bin/helm-v$HELM_VERSION"
fi
ln -sf "$bin/helm-v$HELM_VERSION" "$bin/helm"
gw="$cache/gateway-api-v$GATEWAY_API_VERSION"
if [ ! -f "$gw/gateway.networking.k8s.io_httproutes.yaml" ]; then
  log "fetching Gateway API v$GATEWAY_API_VERSION CRDs (from its Go module)"
  dir=$(cd /tmp && go mod download -json "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$gw" && cp -r "$dir/config/crd/standard" "$gw"
fi
log "ready: $("$bin/kube-apiserver" --version), kubectl $K8S_VERSION, $("$bin/helm" version --short)"
