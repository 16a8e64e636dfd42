#!/usr/bin/env bash
# Network policy, shown on Cilium's Star Wars world (examples/policy/): a node
# network namespace with the sluice agent (--datapath) and its Envoy, and the
# pods xwing, tiefighter and deathstar in namespaces of their own, joined by
# veths with /32 routes as a routing CNI wires them. Prints the verdicts as
# rule1 and its L7 version come and go, then removes everything it made.
# Needs root (network namespaces, cgroups, BPF). Run: bash scripts/demo.sh --policy
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SLUICE_CACHE:-/var/cache/sluice}
[ "$(id -u)" = 0 ] || { echo "demo --policy: needs root (network namespaces, cgroups, BPF)" >&2; exit 1; }
bash "$here/scripts/setup.sh"

cg2=$(awk '$3 == "cgroup2" { print $2 }' /proc/mounts | grep -m1 -E '^/sys/fs/cgroup(/unified)?$' || true)
[ -n "$cg2" ] || { echo "demo --policy: no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2; exit 1; }

id=$$
node_ns=sluice-demo-$id
cg=$cg2/sluice-demo-$id
run=$(mktemp -d /tmp/sluice-demo-policy.XXXXXX)
bpf=$run/bpf
pods=(xwing:10.0.1.10 tiefighter:10.0.1.11 deathstar:10.0.1.12)
pids=()
in_node() { nsenter --net="/var/run/netns/$node_ns" "$@"; }

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -d "$bpf/sluice" ] && in_node node "$here/bin/sluice.js" cleanup --bpf-root "$bpf" >/dev/null 2>&1
  mountpoint -q "$bpf" && umount "$bpf"
  for p in "${pods[@]}"; do ip netns delete "$node_ns-${p%%:*}" 2>/dev/null; done
  ip netns delete "$node_ns" 2>/dev/null
  for _ in $(seq 50); do [ -d "$cg" ] || break; rmdir "$cg" 2>/dev/null || sleep 0.1; done
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

# The node and its pods.
ip netns add "$node_ns"
ip -n "$node_ns" link set lo up
in_node sysctl -q -w net.ipv4.ip_forward=1
mkdir -p "$cg" "$bpf" "$run/src"
k=0
for p in "${pods[@]}"; do
  name=${p%%:*} addr=${p#*:} k=$((k + 1))
  ip netns add "$node_ns-$name"
  ip -n "$node_ns" link add "lxc$k" type veth peer name eth0 netns "$node_ns-$name"
  ip -n "$node_ns" addr add 169.254.1.1/32 dev "lxc$k"
  ip -n "$node_ns" link set "lxc$k" up
  ip -n "$node_ns" route add "$addr/32" dev "lxc$k"
  ip -n "$node_ns-$name" link set lo up
  ip -n "$node_ns-$name" addr add "$addr/32" dev eth0
  ip -n "$node_ns-$name" link set eth0 up
  ip -n "$node_ns-$name" route add 169.254.1.1 dev eth0 scope link
  ip -n "$node_ns-$name" route add default via 169.254.1.1 dev eth0
done
nsenter --net="/var/run/netns/$node_ns-deathstar" node -e '
  require("http").createServer((q, s) => s.end(q.method === "PUT" ? "Panic: deathstar exploded\n" : "Ship landed\n")).listen(80, "10.0.1.12");
' & pids+=($!)

cp "$here/examples/policy/starwars.yaml" "$run/src/"
in_node node "$here/bin/sluice.js" agent --source "dir:$run/src" --node demo-node --socket "$run/xds.sock" --state-dir "$run/state" \
  --datapath --bpf-root "$bpf" --cgroup-dir "$cg" --proxy-ports 20700-20709 2>"$run/agent.log" & pids+=($!)
for _ in $(seq 100); do [ -S "$run/xds.sock" ] && break; sleep 0.1; done
node "$here/bin/sluice.js" bootstrap --node demo-node --socket "$run/xds.sock" >"$run/bootstrap.yaml"
in_node "$cache/bin/envoy" -c "$run/bootstrap.yaml" --use-dynamic-base-id --log-level warn 2>"$run/envoy.log" & pids+=($!)

# One request from a pod (in the node's cgroup, where the socket LB turns the
# Service address into the deathstar's): "200", "403 <body>" or "timeout".
request() {
  local pod=$1 method=$2 path=$3 out
  out=$(nsenter --net="/var/run/netns/$node_ns-$pod" sh -c "echo \$\$ > $cg/cgroup.procs && exec curl -s -m 3 -X $method -w ' %{http_code}' http://10.96.0.50$path" 2>/dev/null) || { echo timeout; return; }
  case "${out##* }" in
    200) echo 200 ;;
    *) echo "${out##* } ${out% *}" | tr -d '\n' && echo ;;
  esac
}
# Waits (up to 30 s) for a verdict, then prints it.
expect() {
  local want=$1 pod=$2 method=$3 path=$4 got
  for _ in $(seq 30); do
    got=$(request "$pod" "$method" "$path")
    [ "${got%% *}" = "$want" ] && break
  done
  printf '    %-10s %-4s %-20s -> %s\n' "$pod" "$method" "$path" "$got"
}

echo "demo: Star Wars in network namespaces: xwing (org=alliance), tiefighter (org=empire) and deathstar (org=empire,"
echo "  class=deathstar) behind Service deathstar 10.96.0.50; sluice agent --datapath and Envoy in the node namespace"
echo "  no policy:"
expect 200 xwing POST /v1/request-landing
expect 200 tiefighter POST /v1/request-landing
cp "$here/examples/policy/rule1.yaml" "$run/src/policy.yaml"
echo "  rule1 (examples/policy/rule1.yaml: ingress from org=empire on TCP 80, enforced in the kernel):"
expect timeout xwing POST /v1/request-landing
expect 200 tiefighter POST /v1/request-landing
cp "$here/examples/policy/rule1-l7.yaml" "$run/src/policy.yaml"
echo "  rule1 with L7 (examples/policy/rule1-l7.yaml: POST /v1/request-landing only, enforced by Envoy):"
expect 403 tiefighter PUT /v1/exhaust-port
expect 200 tiefighter POST /v1/request-landing
expect timeout xwing POST /v1/request-landing
rm "$run/src/policy.yaml"
echo "  policies deleted:"
expect 200 xwing POST /v1/request-landing
expect 200 tiefighter PUT /v1/exhaust-port
