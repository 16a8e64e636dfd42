#!/usr/bin/env bash
# Runs every test suite. Ends with one line: "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
# etcd, kube-apiserver, kubectl, helm and Gateway API CRDs for the cluster-mode suites.
bash scripts/install-kube.sh || { echo "0 passed, 1 failed"; exit 1; }
export SLUICE_SETUP_DONE=1
log=$(mktemp /tmp/sluice-tap.XXXXXX)
npx tap --reporter=tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1)
rm -f "$log"
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
if [ -z "$total" ]; then echo "0 passed, 1 failed"; exit 1; fi
fail=${fail:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass:-0} passed, ${fail} failed"
exit "$status"
