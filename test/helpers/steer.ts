// The socket LB of a test node, steering Services as the agent's datapath would.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../../src/ids/stable-ids.js';
import { Model } from '../../src/model/model.js';
import type { ModelObject } from '../../src/model/objects.js';
import { SockLbApplier } from '../../src/redirect/apply.js';
import { SockLb } from '../../src/redirect/datapath.js';
import { desiredServices } from '../../src/redirect/desired.js';
import type { ProxyAddresses } from '../../src/redirect/proxy-address.js';
import type { ServiceRedirect } from '../../src/translate/output.js';
import type { NetnsWorld } from './netns.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Opens the node's socket LB (removed at teardown); the returned function programs it for these objects and L7 redirects. */
export function socketLb(t: Teardown, node: NetnsWorld, proxy: ProxyAddresses, objects: object[], nodeName: string): (redirects: readonly ServiceRedirect[]) => void {
  const state = mkdtempSync(join(tmpdir(), 'sluice-ids-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  t.teardown(() => SockLb.remove(node.pinDir));
  const lb = SockLb.open({ pinDir: node.pinDir, cgroupDir: node.cgroupDir });
  t.teardown(() => lb.close());
  lb.setProxyAddresses(proxy.v4, proxy.v6);
  const applier = new SockLbApplier(lb.maps, { services: new StableIds(join(state, 's.json'), [1, 65535]), backends: new StableIds(join(state, 'b.json'), [1, 1 << 30]) });
  const model = Model.from(objects.map((object) => ({ object: object as ModelObject })));
  return (redirects) => applier.apply(desiredServices(model, redirects, { nodeIPs: [], nodeName }));
}

/**
 * The nftables stand-in for the BPF steering into a transparent listener, in
 * the node netns only: forwarding on, marked packets delivered locally, and
 * the given IPv4 table (whose tproxy rules set mark 0x1) loaded.
 */
export function nftTproxy(node: NetnsWorld, table: string): void {
  node.sh('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  node.sh('ip', ['rule', 'add', 'fwmark', '0x1', 'lookup', '100']);
  node.sh('ip', ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
  node.sh('sh', ['-c', `nft -f - <<'EOF'\n${table}\nEOF`]);
}
