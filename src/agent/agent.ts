import { join } from 'node:path';
import type { Logger } from '../log.js';
import { Model } from '../model/model.js';
import { EnvoyResourceDir } from '../sources/envoy-resource-dir.js';
import { KubeYamlDir } from '../sources/kube-yaml-dir.js';
import type { ModelSource, ModelUpdate } from '../sources/source.js';
import type { StatusWriter } from '../status/report.js';
import { watchDir } from '../sources/watch-dir.js';
import { AssemblyState } from '../translate/assembly-state.js';
import { IncrementalTranslation, type UnitChanges } from '../translate/incremental.js';
import { unitOrder } from '../translate/unit-order.js';
import { PMap } from '../model/pmap.js';
import { formatIssue, type TranslationIssue } from '../issues/issue.js';
import { type ObjectTranslation, type ServiceRedirect } from '../translate/output.js';
import type { TranslateContext } from '../translate/context.js';
import { ANY_NODE, NackError, SnapshotCache } from '../xds/snapshot-cache.js';
import { Snapshot } from '../xds/snapshot.js';
import { XdsServer, type XdsServerAddresses } from '../xds/server.js';
import { LastGood } from './last-good.js';
import { AgentMetrics } from './metrics.js';
import { DEFAULT_PROXY_ADDRESSES, LOOPBACK_PROXY_ADDRESSES, type ProxyAddresses } from '../redirect/proxy-address.js';
import { changedSince, fingerprint, namedCulprits } from './nack-blame.js';
import { serviceOfKey } from '../redirect/desired.js';
import { ServiceDatapath, type ServiceDatapathOptions } from './service-datapath.js';
import { DEFAULT_PROXY_PORT_RANGE, ephemeralOverlap } from '../ids/stable-ids.js';
import type { Unplaced } from '../redirect/apply.js';
import { TypeUrl } from '../resources/types.js';
import { ProxyPorts } from './proxy-ports.js';
import { PolicyWiring, type PolicyView } from './policy-wiring.js';
import { PolicyDatapath } from './policy-datapath-wiring.js';
import type { PolicyResult } from '../policy/index.js';
import { IdentityWiring, type IdentityOptions } from './identity-wiring.js';
import { MeshWiring } from './mesh-wiring.js';
import { DEFAULT_FLOW_RING_SIZE, FlowObserver, KernelFlows } from './observe-wiring.js';
import { MESH_INBOUND_PORT, MESH_OUTBOUND_PORT } from '../mesh/membership.js';
import { AccessLogReceiver } from '../observe/als-server.js';
import { FlowMetrics } from '../observe/flow-metrics.js';

export interface AgentOptions {
  /** This node's name; its Envoy's node id. */
  nodeName: string;
  /** Directories (or files) of Kubernetes YAML. */
  kubeDirs?: string[];
  /** A model source other than YAML files, e.g. the Kubernetes API. */
  source?: ModelSource;
  /** Where each version's issues and route status go back to (cluster mode: status and Events). */
  status?: StatusWriter;
  /** Directories of raw Envoy resources (proto3 JSON/YAML with @type). */
  resourceDirs?: string[];
  socketPath?: string;
  tcpAddress?: string;
  /** Where the agent keeps state across restarts (proxy ports). */
  stateDir?: string;
  proxyPortRange?: [number, number];
  /** Ports the node already uses, by what uses them: no config's listener may bind them. */
  reservedPorts?: Record<string, number>;
  log: Logger;
  watch?: boolean;
  /** How long to wait for the node's Envoy to ACK a version before giving up on it. */
  ackTimeoutMs?: number;
  /** Socket load balancing for this node's cgroup; absent means xDS only. */
  datapath?: ServiceDatapathOptions;
  /**
   * Where listeners without an address listen and L7 redirects go. Default: the
   * node proxy addresses with the datapath (pods reach them), loopback without.
   */
  proxyAddresses?: ProxyAddresses;
  /**
   * How long Services stay steered into Envoy after its last xDS stream went,
   * so a hot restart or a reconnect does not flap the datapath.
   */
  envoyGoneGraceMs?: number;
  /** Workload identity: a SPIFFE CA, SVIDs over SDS, the mesh's mTLS and the Workload API. Absent: off. */
  identity?: IdentityOptions;
  /** How many recent flows the agent holds for the Observer API (default Hubble's 4095). */
  flowRingSize?: number;
}

export const DEFAULT_ENVOY_GONE_GRACE_MS = 3000;

const RAW_RESOURCES = 'Envoy resources';

/** Serves the node's Envoy what the sources say, re-translating when they change. */
export class Agent {
  readonly cache = new SnapshotCache();
  private readonly server: XdsServer;
  /** L7 flows from the access logs Envoy streams back over the xDS socket. */
  readonly accessLogs: AccessLogReceiver;
  private readonly sources: ModelSource[] = [];
  private readonly rawDirs: EnvoyResourceDir[];
  private readonly unwatch: (() => void)[] = [];
  private readonly proxyPorts: ProxyPorts;
  private readonly policyWiring: PolicyWiring;
  private readonly proxyAddresses: ProxyAddresses;
  private readonly proxyPortRange: [number, number];
  private readonly lastGood = new LastGood();
  private readonly translation = new IncrementalTranslation();
  private readonly assembly = new AssemblyState();
  /** Each object's translation after LastGood, before NACK hold-back. */
  private readonly good = new Map<string, ObjectTranslation>();
  /** Objects whose hold-back the last publish applied: the next one looks at them again. */
  private heldBack = new Set<string>();
  /** Raw resource files read since the last publish, as units (undefined: the file is gone). */
  private readonly rawChanged = new Map<string, ObjectTranslation | undefined>();
  /** The policy, identity and mesh wirings' units as last assembled. */
  private wiringUnits = new Map<string, ObjectTranslation>();
  private readonly identity?: IdentityWiring;
  private readonly mesh?: MeshWiring;
  /** The node's ports no config may bind: the operator's, and the mesh's tunnel ports when the mesh is on. */
  private readonly reservedPorts?: Record<string, number>;
  private lastIssues: { source: TranslationIssue[]; assembled: TranslationIssue[] } | undefined;
  private model = Model.empty();
  /** Where flow producers hand their flows; the Observer API reads its ring. */
  readonly flows: FlowObserver;
  private kernelFlows?: KernelFlows;
  private sourceIssues: TranslationIssue[] = [];
  private version = 0;
  private units = PMap.empty<string, ObjectTranslation>();
  private acked: ReadonlyMap<string, ObjectTranslation> = new Map();
  private ackedVersion = 0;
  /**
   * Objects whose current translation the node rejected, until they change.
   * Pinned ones (named by the NACK) serve their last accepted translation;
   * the others (a NACK that named nothing) keep serving and carry the issue.
   */
  private readonly nacked = new Map<string, { fingerprint: string; message: string; pinned: boolean }>();
  private loggedIssues = new Set<string>();
  /** Redirects whose listener the node's Envoy has accepted: only these steer traffic. Listed when first asked. */
  private ackedSteering: { units?: ReadonlyMap<string, ObjectTranslation>; list?: ServiceRedirect[] } = { list: [] };
  private get ackedRedirects(): ServiceRedirect[] {
    this.ackedSteering.list ??= [...(this.ackedSteering.units?.values() ?? [])].flatMap((u) => u.redirects);
    return this.ackedSteering.list;
  }
  /** Runs while the node has no stream holding listeners and redirects still steer into Envoy. */
  private envoyGone: NodeJS.Timeout | undefined;
  /** Versions whose ACK is being waited for: one wait a version, so an ACK is handled once. */
  private readonly following = new Set<number>();
  /** The listeners of the current version: their ports are released only once no accepted version has them. */
  private listeners = new Set<string>();
  private datapath: ServiceDatapath | undefined;
  private policyDatapath: PolicyDatapath | undefined;
  /** What the maps were last made from, so an apply that would change nothing is skipped. */
  private datapathInputs: { model: Model; live: string } | undefined;
  /** Service ports the datapath left out (no free id), as issues on their Services. */
  private datapathIssues: TranslationIssue[] = [];
  /** A failed apply is tried again after this backoff, even if nothing changes. */
  private datapathRetry: { timer?: NodeJS.Timeout; failures: number } = { failures: 0 };
  readonly metrics = new AgentMetrics();
  private sourceTimings: ModelUpdate['timings'];
  /** Where the last publish spent its time, in ms, so a bench can tell the phases apart. */
  lastPhases: Record<string, number> = {};
  /** Sources have delivered their first model and xDS is being served. */
  ready = false;

  constructor(private readonly opts: AgentOptions) {
    this.accessLogs = new AccessLogReceiver({ nodeName: opts.nodeName, log: opts.log });
    this.accessLogs.registerMetrics(this.metrics.registry);
    this.flows = new FlowObserver(opts.flowRingSize ?? DEFAULT_FLOW_RING_SIZE, () => ({ model: this.model, policy: this.policy }));
    new FlowMetrics(this.metrics.registry).follow(this.flows.ring);
    this.accessLogs.subscribeEvents((e) => ('lost' in e ? this.flows.reportLost('OBSERVER_EVENTS_QUEUE', e.lost.count) : this.flows.record(e.flow)));
    this.server = new XdsServer({ cache: this.cache, log: opts.log, socketPath: opts.socketPath, tcpAddress: opts.tcpAddress, services: [this.accessLogs.service()] });
    if (opts.kubeDirs?.length) this.sources.push(new KubeYamlDir(opts.kubeDirs));
    if (opts.source) this.sources.push(opts.source);
    this.rawDirs = (opts.resourceDirs ?? []).map((d) => new EnvoyResourceDir(d));
    const range = opts.proxyPortRange ?? DEFAULT_PROXY_PORT_RANGE;
    const eph = ephemeralOverlap(range);
    if (eph) throw new Error(`proxy port range ${range.join('-')} overlaps the kernel's ephemeral ports ${eph.join('-')} (net.ipv4.ip_local_port_range); choose ports outside it`);
    this.proxyPorts = new ProxyPorts(opts.stateDir ? join(opts.stateDir, 'proxy-ports.json') : undefined, range);
    this.proxyAddresses = opts.proxyAddresses ?? (opts.datapath ? DEFAULT_PROXY_ADDRESSES : LOOPBACK_PROXY_ADDRESSES);
    this.proxyPortRange = range;
    // Meshed pods are steered into the tunnel only where the agent has identities to tunnel with.
    this.policyWiring = new PolicyWiring(opts.stateDir, opts.identity ? { mesh: { trustDomain: opts.identity.trustDomain } } : undefined);
    if (opts.identity) {
      this.mesh = new MeshWiring(opts.identity.trustDomain);
      this.identity = new IdentityWiring(opts.identity, opts.nodeName, opts.log, () => this.ready && this.publish());
    }
    this.reservedPorts = this.mesh ? { ...opts.reservedPorts, "the mesh's outbound listener": MESH_OUTBOUND_PORT, "the mesh's tunnel port": MESH_INBOUND_PORT } : opts.reservedPorts;
    this.cache.on('streams', (node) => node === opts.nodeName && this.onEnvoyStreams());
  }

  get currentVersion(): number {
    return this.version;
  }

  /** The policy of the current model, for the operator tools; undefined until the sources have delivered one. */
  get policy(): PolicyResult | undefined {
    return this.ready ? this.policyWiring.view.result : undefined;
  }

  /** Service traffic to steer into Envoy, as of the current version. */
  get redirects(): readonly ServiceRedirect[] {
    return this.assembly.redirects();
  }

  /** Network policy: the computation, and its datapath state as desired and as the datapath may apply it (redirects gated on Envoy's ACK). */
  get policyView(): PolicyView {
    return this.policyWiring.view;
  }

  /** The policy datapath reconciler's hook: called with each new policy view. */
  onPolicy(fn: (view: PolicyView) => void): () => void {
    return this.policyWiring.subscribe(fn);
  }

  async start(): Promise<XdsServerAddresses> {
    if (this.opts.datapath) {
      this.datapath = new ServiceDatapath({ stateDir: this.opts.stateDir, proxyAddresses: this.proxyAddresses, ...this.opts.datapath });
      for (const w of this.datapath.warnings) this.opts.log.error(w);
      if (this.datapath.adopted.length) this.opts.log.info({ programs: this.datapath.adopted }, 'adopted the datapath a previous agent left pinned');
      const { replaced, awaitingFill } = this.datapath.migration;
      if (replaced.length) this.opts.log.info({ maps: replaced, awaitingFill }, 'map definitions changed since the pinned ones: new maps replace them, the old ones serve until then');
      const policy = (this.policyDatapath = new PolicyDatapath({ pinDir: this.opts.datapath.pinDir, proxyAddresses: this.proxyAddresses, log: this.opts.log }));
      this.unwatch.push(this.onPolicy((view) => policy.update(view)));
      this.kernelFlows = new KernelFlows(this.opts.datapath.pinDir, this.opts.nodeName, this.flows, this.opts.log, this.metrics.registry);
    }
    this.readRaw(false);
    // The CA first, so the first snapshot carries the trust bundle (unless that attempt failed: it is retried).
    await this.identity?.start();
    for (const s of this.sources) await s.start((u) => this.onModel(u));
    if (this.sources.length === 0) this.publish();
    const addresses = await this.server.start();
    if (this.opts.watch !== false)
      for (const d of this.opts.resourceDirs ?? []) this.unwatch.push(watchDir(d, (changed) => this.readRaw(true, changed)));
    this.ready = true;
    return addresses;
  }

  private onModel(u: ModelUpdate): void {
    this.sourceTimings = u.timings;
    this.model = u.model;
    this.sourceIssues = u.issues;
    this.publish();
  }

  private readRaw(publish: boolean, changed?: ReadonlySet<string>): void {
    if (this.rawDirs.length === 0) return;
    for (const d of this.rawDirs)
      for (const [file, load] of d.load(changed)) {
        // One unit a file: an edit re-assembles its file, not the directory.
        const object = `${RAW_RESOURCES} ${join(d.dir, file)}`;
        const issues: TranslationIssue[] = (load?.errors ?? []).map((e) => ({ object: e.object ?? `${e.file}[${e.index}]`, origin: { file: e.file, index: e.index }, field: '', message: e.message }));
        this.rawChanged.set(object, load && { object, resources: load.resources.map((r) => r.any), redirects: [], issues });
      }
    if (publish) this.publish();
  }

  /** Translates the current model and publishes a snapshot; returns its version. */
  publish(): number {
    const { log } = this.opts;
    let portFreed = false;
    try {
      const ctx = {
        nodeName: this.opts.nodeName,
        proxyPort: this.proxyPorts.port,
        proxyAddresses: this.proxyAddresses,
        proxyPortRange: this.proxyPortRange,
        reservedPorts: this.reservedPorts,
      };
      const t0 = performance.now();
      const changed = this.translated(ctx);
      const t1 = performance.now();
      const changedTypes = this.assembly.update(changed);
      const listenersChanged = !this.version || changedTypes.has(TypeUrl.Listener);
      const snapshot = Snapshot.fromTypes(this.assembly.resources());
      const t2 = performance.now();
      const issues = this.assembly.issues();
      const allIssues = [...this.sourceIssues, ...issues];
      if (this.lastIssues?.source !== this.sourceIssues || this.lastIssues.assembled !== issues) this.reportIssues(allIssues);
      this.lastIssues = { source: this.sourceIssues, assembled: issues };
      this.version = this.cache.setSnapshot(ANY_NODE, snapshot);
      const t3 = performance.now();
      const phases: Record<string, number> = (this.lastPhases = { ...this.sourceTimings, translateMs: t1 - t0, assembleMs: t2 - t1, publishMs: t3 - t2 });
      this.sourceTimings = undefined;
      log.info({ version: this.version, resources: snapshot.size, objects: this.units.size, issues: allIssues.length, phases }, 'snapshot published');
      this.metrics.published(this.version, snapshot.size, allIssues.length);
      if (listenersChanged) this.listeners = new Set(snapshot.get(TypeUrl.Listener).keys());
      const listeners = this.listeners;
      const ports = listenersChanged ? this.proxyPorts.settle(listeners) : this.proxyPorts.settleUnchanged();
      // A translation that met the port shortage is not to be reused once a port frees.
      if (ports.short) {
        this.translation.invalidate();
        this.policyWiring.forget();
      }
      portFreed = ports.retry;
      this.followAck(this.version, this.units, listeners);
      this.applyDatapath();
      this.opts.status?.write({ model: this.model, issues: [...allIssues, ...this.datapathIssues] });
      phases.totalMs = performance.now() - t0;
    } catch (e) {
      log.error({ err: e }, 'publish failed; the previous snapshot keeps serving');
    }
    // A listener went without a proxy port that this publish freed: translate it again.
    if (portFreed) return this.publish();
    return this.version;
  }

  /**
   * The units that changed since the last publish, as served: after LastGood
   * and NACK hold-back. Objects held back (or just let go) are looked at on
   * every publish, as a NACK or an ACK changes their standing without a change
   * of the object.
   */
  private translated(ctx: TranslateContext): [string, ObjectTranslation | undefined, string][] {
    const changes: UnitChanges = this.translation.update(this.model, ctx);
    const out = new Map<string, [string, ObjectTranslation | undefined, string]>();
    for (const [object, [u, order]] of changes) {
      const good = this.lastGood.applyOne(object, u);
      if (good) this.good.set(object, good);
      else this.good.delete(object);
      out.set(object, [object, good, order]);
    }
    for (const [object, unit] of this.rawChanged) {
      if (unit) this.good.set(object, unit);
      else this.good.delete(object);
      out.set(object, [object, unit, unitOrder(object)]);
    }
    this.rawChanged.clear();
    // The wirings' units come whole; only those that differ by identity are changes.
    this.identity?.update(this.model);
    const policyUnits = this.policyWiring.translate(this.model, ctx);
    const meshUnits = this.mesh?.translate(this.model, this.policyWiring.view.result, ctx) ?? [];
    const wiringUnits = new Map([...policyUnits, ...meshUnits, ...(this.identity?.units() ?? [])].map((u) => [u.object, u]));
    for (const [object, u] of wiringUnits) if (this.wiringUnits.get(object) !== u) out.set(object, [object, u, unitOrder(object)]);
    for (const object of this.wiringUnits.keys()) if (!wiringUnits.has(object)) out.set(object, [object, undefined, unitOrder(object)]);
    for (const [object, u] of wiringUnits) this.good.set(object, u);
    for (const object of this.wiringUnits.keys()) if (!wiringUnits.has(object)) this.good.delete(object);
    this.wiringUnits = wiringUnits;
    const held = new Set(this.nacked.keys());
    for (const object of new Set([...held, ...this.heldBack]))
      if (!out.has(object) && this.good.has(object)) out.set(object, [object, this.good.get(object), this.assemblyOrder(object)]);
    this.heldBack = held;
    const edits: [string, ObjectTranslation | undefined][] = [];
    for (const entry of out.values()) {
      if (entry[1]) entry[1] = this.holdBackNacked(entry[1]);
      edits.push([entry[0], entry[1]]);
    }
    this.units = this.units.with(edits);
    return [...out.values()];
  }

  private assemblyOrder(object: string): string {
    return this.assembly.order(object) ?? unitOrder(object);
  }

  private holdBackNacked(u: ObjectTranslation): ObjectTranslation {
    const bad = this.nacked.get(u.object);
    if (!bad) return u;
    if (bad.fingerprint !== fingerprint(u)) {
      this.nacked.delete(u.object);
      return u;
    }
    if (!bad.pinned) {
      const message = `Envoy rejected a version that changed this object, without naming the resource; the current config keeps serving and goes to Envoy again with the next change: ${bad.message}`;
      return { ...u, issues: [...u.issues, { object: u.object, field: 'resources', reason: 'EnvoyRejected', message }] };
    }
    const accepted = this.acked.get(u.object);
    const issue: TranslationIssue = { object: u.object, field: 'resources', reason: 'EnvoyRejected', message: `Envoy rejected this config, so its last accepted version keeps serving: ${bad.message}` };
    return { ...(accepted ?? { ...u, resources: [], redirects: [] }), issues: [...u.issues, issue] };
  }

  private followAck(version: number, units: ReadonlyMap<string, ObjectTranslation>, listeners: Set<string>): Promise<void> {
    this.following.add(version);
    return this.cache.waitForAck(this.opts.nodeName, version, this.opts.ackTimeoutMs ?? 60_000).finally(() => this.following.delete(version)).then(
      () => {
        if (version === this.version || version > this.ackedVersion) {
          this.ackedVersion = version;
          this.acked = units;
          this.ackedSteering = { units };
          this.policyWiring.acked(listeners);
          this.metrics.acked(version);
          this.applyDatapath();
          this.clearAccepted(units);
          if (this.proxyPorts.acked(listeners)) this.publish();
        }
      },
      (e: unknown) => {
        if (!(e instanceof NackError)) return;
        this.metrics.nacked();
        if (version === this.version) this.rollBack(e, units);
      },
    );
  }

  /**
   * The node rejected the newest version. Objects that changed since the version
   * it last accepted and that Envoy's message names serve their last accepted
   * translations until they change again. A NACK that names none of them pins
   * nothing: withdrawing every change would take from Envoy what it serves
   * (everything, before the first ACK), so the NACK is reported on each changed
   * object while the current set keeps serving, and the next change tries again.
   */
  private rollBack(e: NackError, units: ReadonlyMap<string, ObjectTranslation>): void {
    const { log } = this.opts;
    const changed = changedSince(this.acked, units.values());
    const named = namedCulprits(changed, e.nack);
    if (named.length) {
      for (const u of named) this.nacked.set(u.object, { fingerprint: fingerprint(u), message: e.nack.message, pinned: true });
      log.error({ node: e.nack.nodeId, objects: named.map((u) => u.object), error: e.nack.message }, 'Envoy rejected config; rolling these objects back to their last accepted version');
      this.publish();
      return;
    }
    // The same rejection stands for every later version until something changes; report it once.
    const fresh = changed.filter((u) => {
      const known = this.nacked.get(u.object);
      return !known || known.fingerprint !== fingerprint(u) || known.message !== e.nack.message;
    });
    if (!fresh.length) return;
    for (const u of fresh) this.nacked.set(u.object, { fingerprint: fingerprint(u), message: e.nack.message, pinned: false });
    log.error(
      { node: e.nack.nodeId, type: e.nack.typeUrl, objects: changed.map((u) => u.object), error: e.nack.message },
      'Envoy rejected config without naming a resource; nothing is rolled back, the NACK is reported on every object changed since its last ACK',
    );
    // Only to report the issues: the resources are the same, so Envoy is sent nothing.
    this.publish();
  }

  /** The node took these translations after all: their rejection no longer stands. */
  private clearAccepted(units: ReadonlyMap<string, ObjectTranslation>): void {
    let cleared = false;
    for (const [object, bad] of this.nacked) {
      const u = units.get(object);
      if (!bad.pinned && u && fingerprint(u) === bad.fingerprint) cleared = this.nacked.delete(object);
    }
    if (cleared) this.publish();
  }

  /**
   * The node's Envoy streams changed. When none holds listeners any more, its
   * redirects stay through a short grace (a hot restart or a reconnect must not
   * flap the datapath), then Services go straight to their backends until a
   * live stream ACKs listeners again.
   */
  private onEnvoyStreams(): void {
    const node = this.opts.nodeName;
    if (!this.ready || this.cache.holdsListeners(node)) return;
    // A stream that just came has to ACK the current version before it gets traffic.
    if (!this.following.has(this.version)) {
      void this.followAck(this.version, this.units, this.listeners);
    }
    const steering = () => this.ackedRedirects.length > 0 || this.policyWiring.redirecting;
    if (this.envoyGone || !steering()) return;
    this.envoyGone = setTimeout(() => {
      this.envoyGone = undefined;
      if (!this.ready || this.cache.holdsListeners(node) || !steering()) return;
      this.opts.log.warn({ node, redirects: this.ackedRedirects.length }, "no xDS stream of this node's Envoy holds listeners; Services go straight to their backends until one ACKs listeners again");
      this.ackedSteering = { list: [] };
      this.policyWiring.acked(new Set());
      this.applyDatapath();
    }, this.opts.envoyGoneGraceMs ?? DEFAULT_ENVOY_GONE_GRACE_MS);
    this.envoyGone.unref?.();
  }

  /**
   * Services go to their backends at once; a Service goes to its L7 listener only
   * once Envoy has accepted that listener, so no connection meets a closed port.
   */
  private applyDatapath(): void {
    if (!this.datapath) return;
    clearTimeout(this.datapathRetry.timer);
    this.datapathRetry.timer = undefined;
    const live = this.assembly.redirects().filter((r) =>
      this.ackedRedirects.some((a) => a.service === r.service && a.port === r.port && a.proxyPort === r.proxyPort),
    );
    // Every version is applied once when published and again when ACKed; the second
    // usually changes nothing, and a 10,000-Service model is not free to walk.
    const liveKey = JSON.stringify(live);
    if (this.datapathInputs?.model === this.model && this.datapathInputs.live === liveKey) return;
    const { log } = this.opts;
    try {
      const r = this.datapath.apply(this.model, live, this.opts.nodeName);
      this.metrics.datapathApplied(r.services);
      this.noteUnplaced(r.unplaced);
      const stats = { upserts: r.upserts, deletes: r.deletes, services: r.services, redirected: live.length };
      if (r.failed || r.undeleted) {
        const retryInMs = this.retryDatapath();
        log.error(
          { ...stats, failedFrontends: r.failed, undeleted: r.undeleted, errors: r.errors, retryInMs },
          `datapath partly updated: the kernel refused some writes; frontends keeping their previous entries: ${r.failed}, stale entries waiting for deletion: ${r.undeleted}; retrying`,
        );
        return;
      }
      this.datapathRetry.failures = 0;
      if (r.upserts || r.deletes) log.info(stats, 'datapath updated');
      this.datapathInputs = { model: this.model, live: liveKey };
    } catch (e) {
      const retryInMs = this.retryDatapath();
      log.error({ err: e, retryInMs }, 'datapath update failed partway: the maps hold what was written before the error, each service on its old or new entries; the retry re-reads them');
    }
  }

  /** Schedules another apply, backing off from 1 s to a minute; returns the delay. */
  private retryDatapath(): number {
    this.datapathInputs = undefined;
    const delay = Math.min(60_000, 1000 * 2 ** this.datapathRetry.failures++);
    this.datapathRetry.timer = setTimeout(() => this.applyDatapath(), delay);
    this.datapathRetry.timer.unref();
    return delay;
  }

  /** Service ports without a datapath id become issues on their Services, logged once. */
  private noteUnplaced(unplaced: Unplaced[]): void {
    const before = new Set(this.datapathIssues.map(formatIssue));
    const byText = new Map<string, TranslationIssue>();
    for (const u of unplaced) {
      const { service, port } = serviceOfKey(u.serviceKey);
      const issue = { object: `Service ${service}`, field: `spec.ports (${port})`, message: u.message };
      byText.set(formatIssue(issue), issue);
    }
    this.datapathIssues = [...byText.values()];
    for (const [text, i] of byText) if (!before.has(text)) this.opts.log.error({ object: i.object, field: i.field, error: i.message }, text);
  }

  private reportIssues(issues: TranslationIssue[]): void {
    const now = new Set(issues.map(formatIssue));
    for (const i of issues) {
      const text = formatIssue(i);
      if (!this.loggedIssues.has(text)) this.opts.log.error({ object: i.object, file: i.origin?.file, document: i.origin?.index, field: i.field, error: i.message }, text);
    }
    this.loggedIssues = now;
  }

  /** Why the agent is not ready yet, as the sources tell it. */
  waitingFor(): string[] {
    return this.ready ? [] : this.sources.flatMap((s) => s.pending?.() ?? []);
  }

  /** The issues of the current version, formatted. */
  issues(): string[] {
    return [...this.loggedIssues, ...this.datapathIssues.map(formatIssue)];
  }

  async stop(): Promise<void> {
    this.ready = false;
    clearTimeout(this.datapathRetry.timer);
    clearTimeout(this.envoyGone);
    this.datapath?.close();
    this.kernelFlows?.close();
    for (const u of this.unwatch) u();
    await this.policyDatapath?.stop();
    await this.identity?.stop();
    for (const s of this.sources) await s.stop();
    await this.opts.status?.stop();
    await this.server.stop();
  }
}
