#!/usr/bin/env bash
# The demo: the sluice agent serving a real Envoy the bundled examples.
#   bash scripts/demo.sh           run until Ctrl-C (Envoy listens on 127.0.0.1:10080)
#   bash scripts/demo.sh --check   send 100 requests, print the split, stop (used by the tests)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
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
node "$here/bin/sluice.js" agent --resources "$here/examples/envoy" --socket "$run/xds.sock" 2>"$run/agent.log" & pids+=($!)
for _ in $(seq 100); do [ -S "$run/xds.sock" ] && break; sleep 0.1; done
node "$here/bin/sluice.js" bootstrap --node demo-node --socket "$run/xds.sock" --admin-port 19901 >"$run/bootstrap.yaml"
"$cache/bin/envoy" -c "$run/bootstrap.yaml" --use-dynamic-base-id --log-level warn 2>"$run/envoy.log" & pids+=($!)

for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:10080/ && break; sleep 0.1; done
echo "demo: agent pid ${pids[1]}, envoy pid ${pids[2]}, admin http://127.0.0.1:19901"
echo "demo: 100 requests to http://127.0.0.1:10080/ (route weights 80/20):"
for _ in $(seq 100); do curl -fs http://127.0.0.1:10080/ | cut -d' ' -f1; done | sort | uniq -c
if [ "$mode" = "--check" ]; then exit 0; fi
echo "demo: edit $here/examples/envoy/demo.yaml and Envoy follows; Ctrl-C stops everything"
tail -f "$run/agent.log"
