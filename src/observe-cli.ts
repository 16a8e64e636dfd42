// `sluice observe`: the node's recent and live flows from the agent's Observer
// API, with `hubble observe`'s flag names and output, for operators without
// the hubble CLI (the real one works against the same socket).
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import { ObserverClient, type GetFlowsResponse } from './gen/hubble/observer/observer.js';
import { compactLine, responseJson } from './observe/hubble-output.js';
import { observeRequest, type ObserveFlags } from './observe/hubble-request.js';
import { DEFAULT_OBSERVER_SOCKET } from './observe/observer-server.js';

const collect = (v: string, prior: string[] = []) => [...prior, v];

/** hubble's --server forms: unix:///path, a bare socket path, or host:port. */
function target(server: string): string {
  if (server.startsWith('unix:') || server.includes(':')) return server;
  return `unix://${server}`;
}

const REPEATABLE: [string, string][] = [
  ['--pod <[ns/]pod>', 'flows from or to pods with this name prefix (namespace "default" if none given)'],
  ['--from-pod <[ns/]pod>', 'flows from pods with this name prefix'],
  ['--to-pod <[ns/]pod>', 'flows to pods with this name prefix'],
  ['-n, --namespace <ns>', 'flows from or to this namespace'],
  ['--from-namespace <ns>', 'flows from this namespace'],
  ['--to-namespace <ns>', 'flows to this namespace'],
  ['-l, --label <selector>', 'flows from or to endpoints whose labels match (e.g. "app=web", "k8s:app=web", "reserved:world")'],
  ['--from-label <selector>', 'flows from endpoints whose labels match'],
  ['--to-label <selector>', 'flows to endpoints whose labels match'],
  ['--ip <ip|cidr>', 'flows from or to this address or prefix'],
  ['--from-ip <ip|cidr>', 'flows from this address or prefix'],
  ['--to-ip <ip|cidr>', 'flows to this address or prefix'],
  ['--port <port>', 'flows with this source or destination port'],
  ['--from-port <port>', 'flows with this source port'],
  ['--to-port <port>', 'flows with this destination port'],
  ['--identity <id>', 'flows from or to this security identity (a number or host, world, ...)'],
  ['--from-identity <id>', 'flows from this security identity'],
  ['--to-identity <id>', 'flows to this security identity'],
  ['--service <[ns/]svc>', 'flows from or to this Service'],
  ['--from-service <[ns/]svc>', 'flows from this Service'],
  ['--to-service <[ns/]svc>', 'flows to this Service'],
  ['--verdict <verdict>', 'FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED or TRANSLATED'],
  ['--drop-reason-desc <reason>', 'drops for this reason (e.g. POLICY_DENIED)'],
  ['--protocol <proto>', 'tcp, udp, sctp, icmp, http, ...'],
  ['--http-status <code>', 'HTTP status code or prefix ("403", "5+")'],
  ['--http-method <method>', 'HTTP method'],
  ['--http-path <regex>', 'HTTP path regular expression'],
  ['--http-url <regex>', 'HTTP URL regular expression'],
  ['-t, --type <type[:subtype]>', 'event type: trace, drop, l7, trace-sock, policy-verdict'],
  ['--node-name <pattern>', 'flows seen on matching nodes ("node*", "cluster/node")'],
  ['--traffic-direction <dir>', 'ingress or egress'],
];

export function addObserveCommands(program: Command): void {
  const c = program
    .command('observe')
    .description("this node's recent and live flows, as `hubble observe` shows them (the hubble CLI works against the same socket)")
    .option('--server <address>', "the agent's Observer socket (unix:///path) or host:port", `unix://${DEFAULT_OBSERVER_SOCKET}`)
    .option('--last <n>', 'the last N flows held (default 20 without --since/--follow)')
    .option('--first <n>', 'the first N flows held')
    .option('--all', 'every flow held')
    .option('--since <time>', 'flows since a time: a duration back from now (30s, 5m, 1h) or RFC 3339')
    .option('--until <time>', 'flows until a time (as --since)')
    .option('-f, --follow', 'keep printing new flows as they come')
    .addOption(new Option('-o, --output <format>', 'compact (one line per flow) or json (hubble\'s protojson)').choices(['compact', 'json', 'jsonpb']).default('compact'));
  // hubble's --not: the filter flag right after it excludes instead; commander reports options in order.
  const negated: [keyof ObserveFlags, string][] = [];
  let not = false;
  c.option('--not', 'the next filter flag excludes what it matches (repeat it per flag)');
  c.on('option:not', () => (not = true));
  for (const [flags, desc] of REPEATABLE) {
    c.option(flags, desc, collect);
    const opt = c.options[c.options.length - 1];
    c.on(`option:${opt.name()}`, (v: string) => {
      if (not) negated.push([opt.attributeName() as keyof ObserveFlags, v]);
      not = false;
    });
  }
  c.action(async (o: ObserveFlags & { server: string; output: string }) => {
    const req = observeRequest(o, negated);
    const client = new ObserverClient(target(o.server), credentials.createInsecure());
    const stream = client.getFlows(req);
    const stop = () => stream.cancel();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (r: GetFlowsResponse) => {
        const line = o.output === 'compact' ? compactLine(r) : JSON.stringify(responseJson(r));
        if (line) process.stdout.write(line + '\n');
      });
      stream.on('end', resolve);
      stream.on('error', (e: ServiceError) => {
        if (e.code === status.CANCELLED) resolve();
        else reject(new Error(e.code === status.UNAVAILABLE ? `cannot reach the Observer API at ${o.server} (${e.details}); is the agent running with its observer on?` : e.details || e.message));
      });
    });
    client.close();
  });
}
