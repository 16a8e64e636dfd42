// The agent's side of the socket load balancer: open (or adopt) the pinned
// datapath, and keep its maps equal to what the model and the redirects say.
import { join } from 'node:path';
import type { Model } from '../model/model.js';
import { SockLbApplier, type ApplyResult } from '../redirect/apply.js';
import { SockLb } from '../redirect/datapath.js';
import { desiredOfService, serviceId, type DesiredService, type NodeAddresses } from '../redirect/desired.js';
import { changedServices, SliceIndex } from '../redirect/service-changes.js';
import { addProxyAddresses, type ProxyAddresses } from '../redirect/proxy-address.js';
import type { ServiceRedirect } from '../translate/output.js';
import { StableIds } from '../ids/stable-ids.js';

export interface ServiceDatapathOptions {
  /** On a bpffs mount, e.g. /sys/fs/bpf/sluice. */
  pinDir: string;
  /** The cgroup v2 directory whose processes get service load balancing (the host's root, in a cluster); found when unset. */
  cgroupDir?: string;
  /** The node's bpffs mount point (e.g. /sys/fs/bpf), mounted if it is not one yet. */
  bpfRoot?: string;
  /** Where service and backend ids are kept, so a restarted agent writes the same keys. */
  stateDir?: string;
  /** Where L7 redirects go; put on this network namespace's `lo` unless loopback. */
  proxyAddresses?: ProxyAddresses;
  /** Smaller id pools than the maps allow, to exercise exhaustion in tests. */
  idRanges?: { services?: [number, number]; backends?: [number, number] };
}

/** Rev-NAT ids are u16 in the maps; 0 means none. */
export const SERVICE_ID_RANGE: [number, number] = [1, 65535];
export const BACKEND_ID_RANGE: [number, number] = [1, 2 ** 30];

/** The node's addresses, for NodePort frontends reached from the node itself. */
export function nodeIPs(model: Model, nodeName: string): string[] {
  const node = model.node(nodeName);
  return (node?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address);
}

export class ServiceDatapath {
  private readonly lb: SockLb;
  private readonly applier: SockLbApplier;
  /** What the last clean apply was made from: the next works on the difference. */
  private applied: { model: Model; redirects: readonly ServiceRedirect[]; node: NodeAddresses } | undefined;
  private slices = new SliceIndex();
  /** How many applies walked every Service, and how many only the changed ones. */
  readonly applies = { full: 0, changes: 0 };
  /** The last apply: whether it walked everything, how many Services it looked at, and the model delta's share of its time. */
  lastApply = { full: true, services: 0, deltaMs: 0 };
  /** Proxy addresses that could not be added; their family's L7 redirects will fail to connect. */
  readonly warnings: string[] = [];

  constructor(opts: ServiceDatapathOptions) {
    this.lb = SockLb.open({ pinDir: opts.pinDir, cgroupDir: opts.cgroupDir, bpfRoot: opts.bpfRoot });
    try {
      if (opts.proxyAddresses) {
        this.warnings.push(...addProxyAddresses(opts.proxyAddresses));
        this.lb.setProxyAddresses(opts.proxyAddresses.v4, opts.proxyAddresses.v6);
      }
      const state = (f: string) => (opts.stateDir ? join(opts.stateDir, f) : undefined);
      this.applier = new SockLbApplier(this.lb.maps, {
        services: new StableIds(state('service-ids.json'), opts.idRanges?.services ?? SERVICE_ID_RANGE),
        backends: new StableIds(state('backend-ids.json'), opts.idRanges?.backends ?? BACKEND_ID_RANGE),
      });
    } catch (e) {
      // Let go of the object; the pins, links and proxy addresses stay, since what is pinned may still be serving.
      this.lb.close();
      throw e;
    }
  }

  /** Maps an upgrade changed, recreated rather than reused, and which of them still wait for the first apply. */
  get migration(): { replaced: readonly string[]; awaitingFill: string[] } {
    return { replaced: this.lb.replaced, awaitingFill: this.lb.awaitingFill };
  }

  get cgroupDir(): string {
    return this.lb.cgroupDir;
  }

  /** Programs found attached by an earlier agent and adopted rather than attached again. */
  get adopted(): readonly string[] {
    return this.lb.adopted;
  }

  /**
   * Brings the maps to what the model and redirects say. After a clean apply the
   * next one works on the change alone: the Services the model delta and the
   * redirect list name. Everything is walked at the first apply (adopting what a
   * previous agent left), after one that failed (its retry), and when the
   * node's addresses move (every NodePort frontend does).
   */
  apply(model: Model, redirects: readonly ServiceRedirect[], nodeName: string): ApplyResult & { services: number } {
    const node: NodeAddresses = { nodeIPs: nodeIPs(model, nodeName), nodeName };
    const prev = this.applied;
    this.applied = undefined;
    let result: ApplyResult;
    if (!prev || this.applier.needsFullWalk || prev.node.nodeName !== nodeName || prev.node.nodeIPs.join() !== node.nodeIPs.join()) {
      this.applies.full++;
      this.slices = SliceIndex.of(model);
      const slices = this.slices;
      const services = model.services();
      this.lastApply = { full: true, services: services.length, deltaMs: 0 };
      result = this.applier.apply(services.flatMap((svc) => desiredOfService(svc, slices.slices(serviceId(svc)), redirects, node)));
    } else {
      this.applies.changes++;
      const t0 = performance.now();
      const delta = model.changesSince(prev.model);
      const deltaMs = performance.now() - t0;
      const touched = changedServices(prev, { model, redirects }, delta, this.slices);
      this.lastApply = { full: false, services: touched.size, deltaMs };
      const changed = new Map<string, DesiredService[]>();
      for (const id of touched) {
        const svc = model.get('Service', id);
        changed.set(id, svc ? desiredOfService(svc, this.slices.slices(id), redirects, node) : []);
      }
      result = this.applier.applyServices(changed);
    }
    // A retry must walk everything: what did not land is known only frontend by frontend.
    if (!result.failed && !result.undeleted) this.applied = { model, redirects, node };
    // Replaced maps must hold the whole desired state before the programs move onto them;
    // after a partial fill the old programs and maps keep serving until a retry completes it.
    if (!result.failed && !result.unplaced.length) this.lb.commit();
    return { ...result, services: this.applier.frontends };
  }

  /** Lets go; the pinned programs and maps keep serving connections while no agent runs. */
  close(): void {
    this.lb.close();
  }
}
