#!/usr/bin/env bash
# The demo: the sluice agent serving a real Envoy the bundled examples.
#   bash scripts/demo.sh           run until Ctrl-C (Envoy listens on 127.0.0.1:10080)
#   bash scripts/demo.sh --check   send 100 requests, print the split, stop (used by the tests)
#   bash scripts/demo.sh --policy  network policy on the Star Wars world in network namespaces (root)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ "${1:-}" = "--policy" ] && exec bash "$here/scripts/demo-policy.sh"
cache=${SLUICE_CACHE:-/var/cache/sluice}
mode=${1:-run}
bash "$here/scripts/setup.sh"

run=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

node "$here/scripts/demo-backends.mjs" & pids+=($!)
node "$here/bin/sluice.js" agent --source "dir:$here/examples/kubernetes" --node demo-node --socket "$run/xds.sock" \
  --state-dir "$run/state" 2>"$run/agent.log" & pids+=($!)
for _ in $(seq 100); do [ -S "$run/xds.sock" ] && break; sleep 0.1; done
node "$here/bin/sluice.js" bootstrap --node demo-node --socket "$run/xds.sock" --health-port 19901 >"$run/bootstrap.yaml"
"$cache/bin/envoy" -c "$run/bootstrap.yaml" --use-dynamic-base-id --log-level warn 2>"$run/envoy.log" & pids+=($!)

for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:10080/ && break; sleep 0.1; done
echo "demo: agent pid ${pids[1]}, envoy pid ${pids[2]}, admin: curl --unix-socket $run/envoy-admin.sock http://admin/"
echo "demo: CiliumClusterwideEnvoyConfig echo-split, 100 requests to http://127.0.0.1:10080/ (weights 80/20):"
for _ in $(seq 100); do curl -fs http://127.0.0.1:10080/ | cut -d' ' -f1; done | sort | uniq -c
gamma=$(curl -fs --unix-socket "$run/envoy-admin.sock" 'http://admin/listeners?format=json' | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const l = JSON.parse(s).listener_statuses.find((x) => x.name === "gamma/default/echo:8080");
    console.log(l ? l.local_address.socket_address.port_value : "");
  });')
echo "demo: HTTPRoute default/echo (GAMMA) on Envoy listener gamma/default/echo:8080, 127.0.0.1:$gamma:"
echo "  100 requests to /api/items (weights 70/30):"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$gamma/api/items" | cut -d' ' -f1; done | sort | uniq -c | sed 's/^/  /'
echo "  with x-version: v2 -> $(curl -fs -H 'x-version: v2' "http://127.0.0.1:$gamma/" | cut -d' ' -f1)"
echo "  an unmatched path -> HTTP $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gamma/other")"
if [ "$mode" = "--check" ]; then exit 0; fi
echo "demo: edit the YAML in $here/examples/kubernetes and Envoy follows; Ctrl-C stops everything"
tail -f "$run/agent.log"
