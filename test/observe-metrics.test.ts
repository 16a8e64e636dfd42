// Flow metrics on the agent's real /metrics endpoint: Hubble's names and
// labels, exact counts for a known flow set, and a hard cap on series.
import t from 'tap';
import { Registry } from 'prom-client';
import { startHealthServer } from '../src/agent/health-server.js';
import type { Flow, FlowEndpoint, TcpFlags } from '../src/observe/flow.js';
import { FlowMetrics, type FlowEvent } from '../src/observe/flow-metrics.js';

const ep = (name: string, identity: number, namespace = 'shop'): FlowEndpoint => ({
  identity,
  namespace,
  podName: `${name}-7d9f-x${identity}`,
  labels: [`k8s:app=${name}`],
  workloads: [{ kind: 'Deployment', name }],
});
const frontend = ep('frontend', 1001);
const backend = ep('backend', 1002);
const db = ep('db', 1003);
const ip = { source: '10.0.1.5', destination: '10.0.2.7', ipVersion: 'IPv4' as const };
let clock = 1_700_000_000_000_000_000n;
const base = (): Pick<Flow, 'timeNs' | 'nodeName' | 'ip'> => ({ timeNs: (clock += 1_000_000n), nodeName: 'n1', ip });

function http200(latencyMs: number): Flow {
  return {
    ...base(), verdict: 'FORWARDED', type: 'L7', source: frontend, destination: backend, trafficDirection: 'EGRESS',
    l4: { protocol: 'TCP', sourcePort: 40000, destinationPort: 8080 },
    l7: { type: 'SAMPLE', latencyNs: BigInt(latencyMs * 1_000_000), http: { code: 200, method: 'GET', url: 'http://backend/api', protocol: 'HTTP/1.1' } },
  };
}
const l7Denied: Flow = {
  ...base(), verdict: 'DROPPED', type: 'L7', source: frontend, destination: backend, trafficDirection: 'INGRESS',
  l4: { protocol: 'TCP', sourcePort: 40001, destinationPort: 8080 },
  l7: { type: 'SAMPLE', latencyNs: 1_000_000n, http: { code: 403, method: 'POST', url: 'http://backend/admin', protocol: 'HTTP/1.1' } },
};
const policyDrop: Flow = {
  ...base(), verdict: 'DROPPED', dropReason: 'POLICY_DENIED', type: 'L3_L4', source: frontend, destination: db, trafficDirection: 'INGRESS',
  l4: { protocol: 'TCP', sourcePort: 40002, destinationPort: 5432, flags: { SYN: true } },
};
const tcp = (flags: TcpFlags, isReply = false): Flow => ({
  ...base(), verdict: 'FORWARDED', type: 'L3_L4', source: isReply ? backend : frontend, destination: isReply ? frontend : backend,
  trafficDirection: 'EGRESS', isReply, l4: { protocol: 'TCP', sourcePort: 40003, destinationPort: 8080, flags },
});

/** A series' key with its labels sorted: 'name{a="x",b="y"}'. */
function canon(series: string): string {
  const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$/.exec(series);
  if (!m) throw new Error(`unparsable series: ${series}`);
  const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
  return `${m[1]}{${labels.join(',')}}`;
}

/** Canonical series key to the sample's value; comments skipped. */
function samples(text: string, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || !line.startsWith(prefix) || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(canon(line.slice(0, at)), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(registry: Registry): Promise<string> {
  const server = await startHealthServer({ ready: true, metrics: { registry } }, 0, '127.0.0.1');
  try {
    const r = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return await r.text();
  } finally {
    await server.close();
  }
}

t.test('counters on /metrics match the flows fed, under Hubble names and labels', async (t) => {
  const registry = new Registry();
  const metrics = new FlowMetrics(registry, { sourceContext: 'workload-name|namespace', destinationContext: 'workload-name|namespace' });
  const flows = [http200(5), http200(20), http200(300), l7Denied, policyDrop, policyDrop, tcp({ SYN: true }), tcp({ SYN: true, ACK: true }, true), tcp({ FIN: true, ACK: true }), tcp({ RST: true })];
  // Shaped as the agent's flow ring delivers: flows, and losses as counts.
  const listeners: ((e: FlowEvent) => void)[] = [];
  const stop = metrics.follow({ subscribe: (fn) => (listeners.push(fn), () => void listeners.splice(listeners.indexOf(fn), 1)) });
  const emit = (e: FlowEvent) => listeners.forEach((l) => l(e));
  for (const flow of flows) emit({ flow });
  emit({ lost: { source: 'PERF_EVENT_RING_BUFFER', count: 10 } });
  emit({ lost: { source: 'PERF_EVENT_RING_BUFFER', count: 15 } });
  stop();
  t.equal(listeners.length, 0, 'unsubscribed');
  emit({ lost: { source: 'PERF_EVENT_RING_BUFFER', count: 100 } });

  const text = await scrape(registry);
  const fb = 'destination="backend",source="frontend"';
  const fdb = 'destination="db",source="frontend"';
  const bf = 'destination="frontend",source="backend"';
  const expected: Record<string, number> = {
    [`hubble_flows_processed_total{${fb},protocol="HTTP",subtype="HTTP",type="L7",verdict="FORWARDED"}`]: 3,
    [`hubble_flows_processed_total{${fb},protocol="HTTP",subtype="HTTP",type="L7",verdict="DROPPED"}`]: 1,
    [`hubble_flows_processed_total{${fdb},protocol="TCP",subtype="",type="Drop",verdict="DROPPED"}`]: 2,
    [`hubble_flows_processed_total{${fb},protocol="TCP",subtype="",type="PolicyVerdict",verdict="FORWARDED"}`]: 3,
    [`hubble_flows_processed_total{${bf},protocol="TCP",subtype="",type="PolicyVerdict",verdict="FORWARDED"}`]: 1,
    [`hubble_drop_total{${fdb},protocol="TCP",reason="POLICY_DENIED"}`]: 2,
    [`hubble_drop_total{${fb},protocol="HTTP",reason="DROP_REASON_UNKNOWN"}`]: 1,
    [`hubble_tcp_flags_total{${fb},family="IPv4",flag="SYN"}`]: 1,
    [`hubble_tcp_flags_total{${bf},family="IPv4",flag="SYN-ACK"}`]: 1,
    [`hubble_tcp_flags_total{${fb},family="IPv4",flag="FIN"}`]: 1,
    [`hubble_tcp_flags_total{${fb},family="IPv4",flag="RST"}`]: 1,
    [`hubble_http_requests_total{${fb},method="GET",protocol="HTTP/1.1",reporter="client",status="200"}`]: 3,
    [`hubble_http_requests_total{${fb},method="POST",protocol="HTTP/1.1",reporter="server",status="403"}`]: 1,
    [`hubble_policy_verdicts_total{${fb},action="forwarded",direction="egress",match="l7/http"}`]: 3,
    [`hubble_policy_verdicts_total{${fb},action="dropped",direction="ingress",match="l7/http"}`]: 1,
    [`hubble_policy_verdicts_total{${fdb},action="dropped",direction="ingress",match="none"}`]: 2,
    [`hubble_policy_verdicts_total{${fb},action="forwarded",direction="egress",match="none"}`]: 1,
    ['hubble_lost_events_total{source="perf_event_ring_buffer"}']: 25,
  };
  const counters = samples(text, 'hubble_');
  const got = Object.fromEntries([...counters].filter(([k]) => !k.startsWith('hubble_http_request_duration_seconds')));
  t.same(got, Object.fromEntries(Object.entries(expected).map(([k, v]) => [canon(k), v])), 'every hubble counter series, exactly');

  const hist = (suffix: string, labels: string) => counters.get(canon(`hubble_http_request_duration_seconds_${suffix}{${labels}}`));
  const client = `${fb},method="GET",reporter="client"`;
  t.equal(hist('count', client), 3, 'three 200s timed');
  t.ok(Math.abs(hist('sum', client)! - 0.325) < 1e-9, `sum of latencies 0.325 s (${hist('sum', client)})`);
  t.equal(hist('bucket', `${client},le="0.005"`), 1, '5 ms in the 5 ms bucket');
  t.equal(hist('bucket', `${client},le="0.025"`), 2, '20 ms in the 25 ms bucket');
  t.equal(hist('bucket', `${client},le="0.25"`), 2, '300 ms is above 250 ms');
  t.equal(hist('bucket', `${client},le="0.5"`), 3);
  t.equal(hist('count', `${fb},method="POST",reporter="server"`), 1, 'the 403 timed too');
  t.notMatch(text, /sluice_flow_metric_folded_total\{/, 'nothing folded below the cap');
});

t.test('a sampled flow counts as many events as it stands for', async (t) => {
  const registry = new Registry();
  const metrics = new FlowMetrics(registry);
  metrics.observe({ ...policyDrop, count: 7 });
  const s = samples(await scrape(registry), 'hubble_drop_total');
  t.same(Object.fromEntries(s), { [canon('hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"}')]: 7 }, 'no context labels unless configured, as in Hubble');
});

t.test('series per metric stay under the cap; the rest fold into "other" and are counted', async (t) => {
  const registry = new Registry();
  const cap = 1000;
  const metrics = new FlowMetrics(registry, { sourceContext: 'workload', destinationContext: 'workload', maxSeriesPerMetric: cap });
  const n = 5000;
  for (let i = 0; i < n; i++) {
    const src = ep(`w${i}`, 10_000 + i, `team-${i % 50}`);
    metrics.observe({ ...tcp({ SYN: true }), source: src });
  }
  const s = samples(await scrape(registry), '');
  for (const name of ['hubble_flows_processed_total', 'hubble_tcp_flags_total', 'hubble_policy_verdicts_total']) {
    const series = [...s].filter(([k]) => k.startsWith(`${name}{`));
    t.equal(series.length, cap + 1, `${name}: ${cap} distinct series plus "other"`);
    const other = series.filter(([k]) => k.includes('source="other"'));
    t.equal(other.length, 1, `${name}: one other series`);
    t.equal(other[0]?.[1], n - cap, `${name}: other holds the ${n - cap} folded flows`);
    t.equal(s.get(`sluice_flow_metric_folded_total{metric="${name}"}`), n - cap, `${name}: folded count reported`);
    t.equal(series.reduce((a, [, v]) => a + v, 0), n, `${name}: no flow lost by folding`);
  }
  t.ok(s.has(canon('hubble_flows_processed_total{protocol="TCP",type="PolicyVerdict",subtype="",verdict="FORWARDED",source="team-0/w0",destination="shop/backend"}')), 'the first workloads keep their own series');
  t.notOk([...s.keys()].some((k) => k.includes('source="team-0/w4999"')), 'the last workload did not get a series');
});

t.test('contexts fall through to the first non-empty one, as Hubble\'s "a|b" does', async (t) => {
  const registry = new Registry();
  const metrics = new FlowMetrics(registry, { sourceContext: 'reserved-identity|pod|ip', destinationContext: 'app', labelsContext: ['source_namespace', 'traffic_direction'] });
  metrics.observe({ ...policyDrop, source: { identity: 2 } });
  metrics.observe({ ...policyDrop, source: { identity: 70000 }, ip: { ...ip, source: '192.0.2.4' } });
  metrics.observe(policyDrop);
  const s = samples(await scrape(registry), 'hubble_drop_total');
  const key = (source: string, ns: string) => canon(`hubble_drop_total{reason="POLICY_DENIED",protocol="TCP",source="${source}",destination="db",source_namespace="${ns}",traffic_direction="ingress"}`);
  t.same(Object.fromEntries(s), { [key('reserved:world', '')]: 1, [key('192.0.2.4', '')]: 1, [key('shop/frontend-7d9f-x1001', 'shop')]: 1 });
});

t.test('an unknown context option is refused with its name', async (t) => {
  t.throws(() => new FlowMetrics(new Registry(), { sourceContext: 'workload-name|podz' }), /sourceContext: unknown context "podz"/);
  t.throws(() => new FlowMetrics(new Registry(), { labelsContext: ['source_nope'] }), /labelsContext: unknown label "source_nope"/);
});
