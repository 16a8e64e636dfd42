import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { Model } from '../model/model.js';
import { EnvoyResourceDir } from '../sources/envoy-resource-dir.js';
import { KubeYamlDir } from '../sources/kube-yaml-dir.js';
import type { ModelSource, ModelUpdate } from '../sources/source.js';
import { watchDir } from '../sources/watch-dir.js';
import { assemble, translateModel } from '../translate/assemble.js';
import { TranslationMemo } from '../translate/memo.js';
import { formatIssue, type ObjectTranslation, type ServiceRedirect, type TranslationIssue } from '../translate/output.js';
import { ANY_NODE, NackError, SnapshotCache } from '../xds/snapshot-cache.js';
import { toXdsResource } from '../xds/snapshot.js';
import { XdsServer, type XdsServerAddresses } from '../xds/server.js';
import { LastGood } from './last-good.js';
import { AgentMetrics } from './metrics.js';
import { DEFAULT_PROXY_ADDRESSES, LOOPBACK_PROXY_ADDRESSES, type ProxyAddresses } from '../redirect/proxy-address.js';
import { ServiceDatapath, type ServiceDatapathOptions } from './service-datapath.js';
import { DEFAULT_PROXY_PORT_RANGE, ephemeralOverlap } from '../ids/stable-ids.js';
import type { Unplaced } from '../redirect/apply.js';
import { TypeUrl } from '../xds/resource-types.js';
import { ProxyPorts } from './proxy-ports.js';

export interface AgentOptions {
  /** This node's name; its Envoy's node id. */
  nodeName: string;
  /** Directories (or files) of Kubernetes YAML. */
  kubeDirs?: string[];
  /** A model source other than YAML files, e.g. the Kubernetes API. */
  source?: ModelSource;
  /** Directories of raw Envoy resources (proto3 JSON/YAML with @type). */
  resourceDirs?: string[];
  socketPath?: string;
  tcpAddress?: string;
  /** Where the agent keeps state across restarts (proxy ports). */
  stateDir?: string;
  proxyPortRange?: [number, number];
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
}

const RAW_RESOURCES = 'Envoy resources directory';

function fingerprint(u: ObjectTranslation): string {
  const h = createHash('sha256');
  for (const r of u.resources) h.update(r.typeUrl).update(r.value);
  return h.digest('base64url');
}

/** Serves the node's Envoy what the sources say, re-translating when they change. */
export class Agent {
  readonly cache = new SnapshotCache();
  private readonly server: XdsServer;
  private readonly sources: ModelSource[] = [];
  private readonly rawDirs: EnvoyResourceDir[];
  private readonly unwatch: (() => void)[] = [];
  private readonly proxyPorts: ProxyPorts;
  private readonly proxyAddresses: ProxyAddresses;
  private readonly lastGood = new LastGood();
  private readonly memo = new TranslationMemo();
  private model = Model.empty();
  private sourceIssues: TranslationIssue[] = [];
  private rawUnit: ObjectTranslation | undefined;
  private version = 0;
  private units = new Map<string, ObjectTranslation>();
  private acked = new Map<string, ObjectTranslation>();
  private ackedVersion = 0;
  /** Objects whose current translation the node rejected: served as last accepted until they change. */
  private readonly nacked = new Map<string, { fingerprint: string; message: string }>();
  private loggedIssues = new Set<string>();
  private currentRedirects: ServiceRedirect[] = [];
  /** Redirects whose listener the node's Envoy has accepted: only these steer traffic. */
  private ackedRedirects: ServiceRedirect[] = [];
  private datapath: ServiceDatapath | undefined;
  /** What the maps were last made from, so an apply that would change nothing is skipped. */
  private datapathInputs: { model: Model; live: string } | undefined;
  /** Service ports the datapath left out (no free id), as issues on their Services. */
  private datapathIssues: TranslationIssue[] = [];
  /** A failed apply is tried again after this backoff, even if nothing changes. */
  private datapathRetry: { timer?: NodeJS.Timeout; failures: number } = { failures: 0 };
  readonly metrics = new AgentMetrics();
  /** Sources have delivered their first model and xDS is being served. */
  ready = false;

  constructor(private readonly opts: AgentOptions) {
    this.server = new XdsServer({ cache: this.cache, log: opts.log, socketPath: opts.socketPath, tcpAddress: opts.tcpAddress });
    if (opts.kubeDirs?.length) this.sources.push(new KubeYamlDir(opts.kubeDirs));
    if (opts.source) this.sources.push(opts.source);
    this.rawDirs = (opts.resourceDirs ?? []).map((d) => new EnvoyResourceDir(d));
    const range = opts.proxyPortRange ?? DEFAULT_PROXY_PORT_RANGE;
    const eph = ephemeralOverlap(range);
    if (eph) throw new Error(`proxy port range ${range.join('-')} overlaps the kernel's ephemeral ports ${eph.join('-')} (net.ipv4.ip_local_port_range); choose ports outside it`);
    this.proxyPorts = new ProxyPorts(opts.stateDir ? join(opts.stateDir, 'proxy-ports.json') : undefined, range);
    this.proxyAddresses = opts.proxyAddresses ?? (opts.datapath ? DEFAULT_PROXY_ADDRESSES : LOOPBACK_PROXY_ADDRESSES);
  }

  get currentVersion(): number {
    return this.version;
  }

  /** Service traffic to steer into Envoy, as of the current version. */
  get redirects(): readonly ServiceRedirect[] {
    return this.currentRedirects;
  }

  async start(): Promise<XdsServerAddresses> {
    if (this.opts.datapath) {
      this.datapath = new ServiceDatapath({ stateDir: this.opts.stateDir, proxyAddresses: this.proxyAddresses, ...this.opts.datapath });
      for (const w of this.datapath.warnings) this.opts.log.error(w);
      if (this.datapath.adopted.length) this.opts.log.info({ programs: this.datapath.adopted }, 'adopted the datapath a previous agent left pinned');
      const { replaced, awaitingFill } = this.datapath.migration;
      if (replaced.length) this.opts.log.info({ maps: replaced, awaitingFill }, 'map definitions changed since the pinned ones: new maps replace them, the old ones serve until then');
    }
    this.readRaw(false);
    for (const s of this.sources) await s.start((u) => this.onModel(u));
    if (this.sources.length === 0) this.publish();
    const addresses = await this.server.start();
    if (this.opts.watch !== false)
      for (const d of this.opts.resourceDirs ?? []) this.unwatch.push(watchDir(d, () => this.readRaw(true)));
    this.ready = true;
    return addresses;
  }

  private onModel(u: ModelUpdate): void {
    this.model = u.model;
    this.sourceIssues = u.issues;
    this.publish();
  }

  private readRaw(publish: boolean): void {
    if (this.rawDirs.length === 0) return;
    const resources = [];
    const issues: TranslationIssue[] = [];
    for (const d of this.rawDirs) {
      const load = d.load();
      resources.push(...load.resources.map((r) => r.any));
      for (const e of load.errors) issues.push({ object: e.object ?? `${e.file}[${e.index}]`, origin: { file: e.file, index: e.index }, field: '', message: e.message });
    }
    this.rawUnit = { object: RAW_RESOURCES, resources, redirects: [], issues };
    if (publish) this.publish();
  }

  /** Translates the current model and publishes a snapshot; returns its version. */
  publish(): number {
    const { log } = this.opts;
    let portFreed = false;
    try {
      const ctx = { nodeName: this.opts.nodeName, proxyPort: this.proxyPorts.port, proxyAddresses: this.proxyAddresses };
      let units = this.lastGood.apply(translateModel(this.model, ctx, this.memo));
      if (this.rawUnit) units.push(this.rawUnit);
      units = units.map((u) => this.holdBackNacked(u));
      const { snapshot, redirects, issues } = assemble(units);
      const allIssues = [...this.sourceIssues, ...issues];
      this.reportIssues(allIssues);
      this.units = new Map(units.map((u) => [u.object, u]));
      this.version = this.cache.setSnapshot(ANY_NODE, snapshot);
      this.currentRedirects = redirects;
      log.info({ version: this.version, resources: snapshot.size, objects: units.length, issues: issues.length + this.sourceIssues.length }, 'snapshot published');
      this.metrics.published(this.version, snapshot.size, allIssues.length);
      const listeners = new Set(snapshot.get(TypeUrl.Listener).keys());
      const ports = this.proxyPorts.settle(listeners);
      // A translation that met the port shortage is not to be reused once a port frees.
      if (ports.short) this.memo.clear();
      portFreed = ports.retry;
      this.followAck(this.version, this.units, listeners);
      this.applyDatapath();
      for (const s of this.sources) s.report?.({ model: this.model, issues: [...allIssues, ...this.datapathIssues] });
    } catch (e) {
      log.error({ err: e }, 'publish failed; the previous snapshot keeps serving');
    }
    // A listener went without a proxy port that this publish freed: translate it again.
    if (portFreed) return this.publish();
    return this.version;
  }

  private holdBackNacked(u: ObjectTranslation): ObjectTranslation {
    const bad = this.nacked.get(u.object);
    if (!bad) return u;
    if (bad.fingerprint !== fingerprint(u)) {
      this.nacked.delete(u.object);
      return u;
    }
    const accepted = this.acked.get(u.object);
    const issue: TranslationIssue = { object: u.object, field: 'resources', reason: 'EnvoyRejected', message: `Envoy rejected this config, so its last accepted version keeps serving: ${bad.message}` };
    return { ...(accepted ?? { ...u, resources: [], redirects: [] }), issues: [...u.issues, issue] };
  }

  private followAck(version: number, units: Map<string, ObjectTranslation>, listeners: Set<string>): void {
    this.cache.waitForAck(this.opts.nodeName, version, this.opts.ackTimeoutMs ?? 60_000).then(
      () => {
        if (version === this.version || version > this.ackedVersion) {
          this.ackedVersion = version;
          this.acked = units;
          this.ackedRedirects = [...units.values()].flatMap((u) => u.redirects);
          this.metrics.acked(version);
          this.applyDatapath();
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
   * The node rejected the newest version. Blame the objects that changed since
   * the version it last accepted (narrowed to those Envoy's message names), and
   * serve their last accepted translations until they change again.
   */
  private rollBack(e: NackError, units: Map<string, ObjectTranslation>): void {
    const changed = [...units.values()].filter((u) => {
      const prior = this.acked.get(u.object);
      return !prior || fingerprint(prior) !== fingerprint(u);
    });
    const named = changed.filter((u) => u.resources.some((r) => e.nack.message.includes(toXdsResource(r).name)));
    const culprits = named.length ? named : changed;
    for (const u of culprits) this.nacked.set(u.object, { fingerprint: fingerprint(u), message: e.nack.message });
    this.opts.log.error({ node: e.nack.nodeId, objects: culprits.map((u) => u.object), error: e.nack.message }, 'Envoy rejected config; rolling these objects back to their last accepted version');
    if (culprits.length) this.publish();
  }

  /**
   * Services go to their backends at once; a Service goes to its L7 listener only
   * once Envoy has accepted that listener, so no connection meets a closed port.
   */
  private applyDatapath(): void {
    if (!this.datapath) return;
    clearTimeout(this.datapathRetry.timer);
    this.datapathRetry.timer = undefined;
    const live = this.currentRedirects.filter((r) =>
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
      const at = u.serviceKey.lastIndexOf(':');
      const issue = { object: `Service ${u.serviceKey.slice(0, at)}`, field: `spec.ports (${u.serviceKey.slice(at + 1)})`, message: u.message };
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
    this.datapath?.close();
    for (const u of this.unwatch) u();
    for (const s of this.sources) await s.stop();
    await this.server.stop();
  }
}
