// `sluice endpoint list`, `sluice policy get` and `sluice policy trace`, as
// cilium-dbg's users know them: they ask the node's agent over its API socket,
// or with --source dir:PATH compute the same views from YAML without one.
import { request } from 'node:http';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { DEFAULT_API_SOCKET, endpointsView, policyView, traceQuery, traceView, type EndpointView, type PolicyView, type TraceView } from './agent/policy-api.js';
import { formatIssue } from './issues/issue.js';
import { computePolicy, identityAllocators, type PolicyResult, type TraceStep } from './policy/index.js';
import { KubeYamlDir } from './sources/kube-yaml-dir.js';

interface Where {
  agent: string;
  source?: string[];
  node?: string;
}

function dirSource(v: string, prior: string[] = []): string[] {
  const m = /^dir:(.+)$/.exec(v);
  if (!m) throw new InvalidArgumentError('want dir:PATH (a directory of Kubernetes YAML)');
  return [...prior, m[1]];
}

function withWhere(c: Command): Command {
  return c
    .option('--agent <socket>', "the agent's API socket (the agent serves it beside its xDS socket)", DEFAULT_API_SOCKET)
    .option('--source <dir:PATH>', 'compute from Kubernetes YAML instead of asking an agent (repeatable)', dirSource)
    .option('--node <name>', "with --source: whose pods are the endpoints (default: every pod's)");
}

/** GET from the agent's API socket; its errors come back as `error` in JSON. */
function fromAgent(socketPath: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        let parsed: { error?: string } | undefined;
        try {
          parsed = JSON.parse(body);
        } catch {
          /* not ours */
        }
        if (res.statusCode === 200 && parsed) resolve(parsed);
        else reject(new Error(`the agent at ${socketPath} answered ${res.statusCode}: ${parsed?.error ?? body.trim()}`));
      });
    });
    req.on('error', (e) => reject(new Error(`cannot reach the agent at ${socketPath} (${e.message}); is it running on this node? Or compute offline with --source dir:PATH`)));
    req.end();
  });
}

/** The policy computed from YAML, as an agent on `node` would hold it; the files' own problems go to stderr. */
function offline(paths: string[], node: string | undefined): PolicyResult {
  const { model, issues } = new KubeYamlDir(paths).read();
  for (const i of issues) process.stderr.write(`warning: ${formatIssue(i)}\n`);
  return computePolicy(model, { ...(node ? { nodeName: node } : {}), ...identityAllocators() });
}

async function view<T>(o: Where, local: (r: PolicyResult) => T, path: string): Promise<T> {
  return o.source ? local(offline(o.source, o.node)) : ((await fromAgent(o.agent, path)) as T);
}

/** Columns padded to their widest line; a cell of several lines makes its row that tall. */
export function table(header: string[][], rows: string[][][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.flatMap((r) => r[c].map((l) => l.length))));
  const lines: string[] = [];
  for (const r of all) {
    const height = Math.max(...r.map((cell) => cell.length));
    for (let i = 0; i < height; i++) lines.push(r.map((cell, c) => (cell[i] ?? '').padEnd(widths[c])).join('   ').trimEnd());
  }
  return lines.join('\n') + '\n';
}

export function formatEndpoints(eps: EndpointView[]): string {
  const on = (b: boolean) => [b ? 'Enabled' : 'Disabled'];
  return table(
    [['ENDPOINT'], ['POLICY (ingress)', 'ENFORCEMENT'], ['POLICY (egress)', 'ENFORCEMENT'], ['IDENTITY'], ['POD'], ['LABELS (source:key[=value])'], ['IPv6'], ['IPv4']],
    eps.map((e) => [[String(e.id)], on(e.ingressEnforced), on(e.egressEnforced), [String(e.identity)], [e.pod], e.labels, e.ips.filter((ip) => ip.includes(':')), e.ips.filter((ip) => !ip.includes(':'))]),
  );
}

const rule = (s: TraceStep) => `${s.policy}, field ${s.field}`;

function describeStep(s: TraceStep): string {
  switch (s.reason) {
    case 'not-enforced':
      return 'allowed: no policy selects it in this direction';
    case 'default-deny':
      if (s.authRequired) return `denied in plaintext: ${s.authRequired.policy}, field ${s.authRequired.field} admits this only over mTLS (authentication required)`;
      return `denied: selected by ${s.policy} and no rule allows this (default deny)`;
    case 'mesh-only':
      if (s.steered) return `allowed by ${rule(s)} inside the mesh's mTLS tunnel (authentication required)`;
      return `denied: ${rule(s)} admits this only inside the mesh's mTLS tunnel (authentication required), and this flow is not carried there`;
    case 'l7-rule':
      return `allowed by ${rule(s)} (L7, in Envoy listener ${s.listener})`;
    case 'l7-no-match':
      return `denied with 403 by Envoy (listener ${s.listener}): no http rule of ${s.policy} matches`;
    case 'rule':
      if (s.verdict === 'redirect') return `redirected to Envoy listener ${s.listener} by ${rule(s)}; give --method and --path for its L7 verdict`;
      return `${s.verdict === 'deny' ? 'denied' : 'allowed'} by ${rule(s)}`;
  }
}

export function formatTrace(t: TraceView): string {
  const q = t.query;
  const request = [q.method, q.path, q.host && `host ${q.host}`].filter(Boolean).join(' ');
  const lines = [`Tracing From: ${q.from} (identity ${t.fromIdentity}) => To: ${q.to} (identity ${t.toIdentity}) ${q.proto ?? 'TCP'}/${q.port}${request ? ` ${request}` : ''}`, ''];
  for (const s of t.steps) lines.push(`  ${s.direction.padEnd(7)} of ${s.direction === 'egress' ? q.from : q.to}: ${describeStep(s)}`);
  const verdict = t.httpStatus === 403 ? 'L7 403' : t.verdict === 'deny' ? 'DENIED' : t.decidedBy.verdict === 'redirect' ? "ALLOWED at L3/L4; Envoy's L7 rules decide each request" : 'ALLOWED';
  const d = t.decidedBy;
  const by = d.reason === 'not-enforced' ? 'no policy (not enforced)' : d.reason === 'default-deny' ? `default deny of ${d.policy}` : d.reason === 'l7-no-match' ? `no http rule of ${d.policy}` : rule(d);
  lines.push('', `Final verdict: ${verdict}`, `Decided by: ${by} (${d.direction})`);
  return lines.join('\n') + '\n';
}

function formatPolicy(v: PolicyView, output: string): string {
  if (output === 'json') return JSON.stringify(v, null, 2) + '\n';
  const out = stringify(v);
  // The issues once more as one line each: what a reader scans for.
  return v.issues.length ? `${out}# not enforced:\n${v.issues.map((i) => `#   ${formatIssue(i)}`).join('\n')}\n` : out;
}

const outputOption = (choices: string[]) => new Option('-o, --output <format>').choices(choices).default(choices[0]);

export function addPolicyCommands(program: Command): void {
  const endpoint = program.command('endpoint').description("this node's endpoints (pods) and their policy enforcement");
  withWhere(endpoint.command('list').description("list this node's pods: endpoint id, identity, labels, ingress/egress enforcement, addresses"))
    .addOption(outputOption(['table', 'json', 'yaml']))
    .action(async (o) => {
      const eps = await view<EndpointView[]>(o, endpointsView, '/v1/endpoints');
      process.stdout.write(o.output === 'json' ? JSON.stringify(eps, null, 2) + '\n' : o.output === 'yaml' ? stringify(eps) : formatEndpoints(eps));
    });

  const policy = program.command('policy').description('the network policies in force, and why a connection passes or not');
  withWhere(policy.command('get').description('print the policies in force (and those refused, with their issues)'))
    .addOption(outputOption(['yaml', 'json']))
    .action(async (o) => {
      process.stdout.write(formatPolicy(await view<PolicyView>(o, policyView, '/v1/policy'), o.output));
    });

  withWhere(policy.command('trace').description('the verdict for one connection (and HTTP request) and the rule that decides it'))
    .requiredOption('--from <ns/pod>', 'the client: NAMESPACE/POD or an address')
    .requiredOption('--to <ns/pod>', 'the server: NAMESPACE/POD or an address')
    .requiredOption('--port <n>', 'the destination port')
    .option('--proto <proto>', 'tcp, udp or sctp', 'tcp')
    .option('--method <method>', 'HTTP method, for the L7 verdict')
    .option('--path <path>', 'HTTP path, for the L7 verdict')
    .option('--host <host>', 'HTTP host, for the L7 verdict')
    .option('--header <name:value>', 'an HTTP request header (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .addOption(outputOption(['text', 'json']))
    .action(async (o) => {
      const q = traceQuery({ from: o.from, to: o.to, port: o.port, proto: o.proto, method: o.method, path: o.path, host: o.host, headers: o.header });
      const params = new URLSearchParams({ from: q.from, to: q.to, port: String(q.port), proto: q.proto!.toLowerCase() });
      for (const k of ['method', 'path', 'host'] as const) if (q[k] !== undefined) params.set(k, q[k]!);
      for (const h of o.header ?? []) params.append('header', h);
      const t = await view<TraceView>(o, (r) => traceView(r, q), `/v1/policy/trace?${params}`);
      process.stdout.write(o.output === 'json' ? JSON.stringify(t, null, 2) + '\n' : formatTrace(t));
    });
}
