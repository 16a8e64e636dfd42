// Random policies: the datapath entries (as the kernel's lookup reads them)
// and trace, which reads the rules directly, reach the same verdict for every
// pod pair, address and port. A fixed seed makes every run the same.
import t from 'tap';
import { lookupVerdict, trace, type PolicyResult } from '../src/policy/index.js';
import { identityOfIp } from '../src/policy/identities.js';
import { ccnp, cnp, compute, knp, pod, seeded } from './helpers/policy-world.js';

const rand = seeded(0x2545f491);
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)];
const some = <T>(xs: readonly T[], max: number): T[] => Array.from({ length: 1 + rand(max) }, () => pick(xs));

const APPS = ['a', 'b', 'c'];
const NSS = ['n1', 'n2'];
const PORTS = [53, 79, 80, 81, 443, 8080];
const ADDRS = ['192.0.2.1', '192.0.2.200', '198.51.100.9', '8.8.8.8', '172.18.0.2'];

function selector() {
  return pick([
    {},
    { matchLabels: { app: pick(APPS) } },
    { matchExpressions: [{ key: 'app', operator: pick(['In', 'NotIn']), values: some(APPS, 2) }] },
    { matchLabels: { app: pick(APPS), 'k8s:io.kubernetes.pod.namespace': pick(NSS) } },
    { matchExpressions: [{ key: 'tier', operator: pick(['Exists', 'DoesNotExist']) }] },
  ]);
}

function toPorts(l7: boolean) {
  const port = pick(PORTS);
  return [{
    ports: [pick([{ port: String(port), protocol: pick(['TCP', 'UDP', 'ANY']) }, { port: String(port), endPort: port + rand(400), protocol: pick(['TCP', 'ANY']) }, { port: '0', protocol: 'TCP' }, { port: 'http', protocol: pick(['TCP', 'ANY']) }])],
  }].map((p) => (l7 && rand(2) ? { ports: [{ port: pick([String(port), 'http']), protocol: 'TCP' }], rules: { http: [{ method: pick(['GET', 'POST']) }] } } : p));
}

function rule(dir: 'ingress' | 'egress', deny: boolean) {
  const [ep, cidr, ent] = dir === 'ingress' ? ['fromEndpoints', 'fromCIDRSet', 'fromEntities'] : ['toEndpoints', 'toCIDRSet', 'toEntities'];
  const r: Record<string, unknown> = {};
  switch (rand(5)) {
    case 0: r[ep] = [selector()]; break;
    case 1: r[cidr] = [{ cidr: '192.0.2.0/24', except: rand(2) ? ['192.0.2.128/25'] : [] }]; break;
    case 2: r[ent] = some(['world', 'cluster', 'host', 'all'], 2); break;
    case 3: break; // ports only: every peer
    default: r[ep] = [selector(), selector()];
  }
  if (rand(3) || !Object.keys(r).length) r.toPorts = toPorts(!deny);
  return r;
}

function policy(i: number): object {
  const spec: Record<string, unknown> = { endpointSelector: selector() };
  for (const [key, dir, deny] of [['ingress', 'ingress', false], ['egress', 'egress', false], ['ingressDeny', 'ingress', true], ['egressDeny', 'egress', true]] as const)
    if (rand(deny ? 4 : 2) === 0) spec[key] = Array.from({ length: 1 + rand(2) }, () => rule(dir, deny));
  if (rand(6) === 0) spec.enableDefaultDeny = { ingress: false };
  if (rand(5) === 0) return knp(`k${i}`, { podSelector: { matchLabels: { app: pick(APPS) } }, ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '192.0.2.0/24' } }], ports: [{ port: pick(PORTS) }] }] }, pick(NSS));
  return rand(3) ? cnp(`p${i}`, spec, pick(NSS)) : ccnp(`c${i}`, spec);
}

function verdictOf(r: PolicyResult, direction: 'ingress' | 'egress', at: string, identity: number, port: number, proto: number) {
  const e = r.state.endpoints.find((x) => x.pod === at)!;
  const hit = lookupVerdict(r.state.entries, { endpoint: e.endpoint, direction, identity, proto, port });
  return hit ? hit.verdict : (direction === 'ingress' ? e.ingressEnforced : e.egressEnforced) ? 'deny' : 'allow';
}

t.test('entries and trace agree on random policies', async (t) => {
  let cases = 0;
  let mismatches = 0;
  const verdicts = new Set<string>();
  for (let world = 0; world < 40; world++) {
    const pods = [];
    for (const ns of NSS)
      for (const [i, app] of APPS.entries()) {
        const p = pod(`${app}`, `10.0.${NSS.indexOf(ns)}.${i + 1}`, { app, ...(i === 0 ? { tier: 'x' } : {}) }, { namespace: ns }) as any;
        // Each app names a different port "http", and one names none.
        if (i < 2) p.spec.containers = [{ name: 'main', ports: [{ name: 'http', containerPort: [80, 8080][i] }] }];
        pods.push(p);
      }
    const policies = Array.from({ length: 1 + rand(4) }, (_, i) => policy(i));
    const r = compute([...pods, ...policies], { hostIPs: ['172.18.0.2'] });
    t.same(r.issues, [], `world ${world}: no issues`);
    const names = r.state.endpoints.map((e) => e.pod);
    for (const port of PORTS)
      for (const [proto, pname] of [[6, 'TCP'], [17, 'UDP']] as const) {
        for (const from of [...names, ...ADDRS])
          for (const to of names) {
            const tr = trace(r, { from, to, port, proto: pname });
            const steps = Object.fromEntries(tr.steps.map((s) => [s.direction, s.verdict]));
            const fromId = names.includes(from) ? r.state.endpoints.find((e) => e.pod === from)!.identity : identityOfIp(r.state.ipcache, from);
            const toId = r.state.endpoints.find((e) => e.pod === to)!.identity;
            const dp: Record<string, string> = { ingress: verdictOf(r, 'ingress', to, fromId, port, proto) };
            if (names.includes(from)) dp.egress = verdictOf(r, 'egress', from, toId, port, proto);
            cases++;
            verdicts.add(`${dp.ingress}`);
            if (steps.ingress !== dp.ingress || steps.egress !== dp.egress) {
              mismatches++;
              if (mismatches <= 5) t.fail(`world ${world} ${from} -> ${to} ${pname}/${port}: trace ${JSON.stringify(steps)}, entries ${JSON.stringify(dp)}\n${JSON.stringify(policies)}`);
            }
          }
      }
  }
  t.equal(mismatches, 0, `${cases} cases agree`);
  t.same([...verdicts].sort(), ['allow', 'deny', 'redirect'], 'the worlds exercise every verdict');
});
