// Workload identity in the agent: which SVIDs this node needs (one per
// service account with a pod here), kept issued and rotated by the identity
// room, and handed to the node's Envoy as SDS Secrets in the same ADS
// snapshot as everything else. Only this node's workloads' keys leave the
// identity room, and only towards this node's Envoy and the Workload API.
import type { Logger } from '../log.js';
import type { Model } from '../model/model.js';
import type { Pod } from '../model/objects.js';
import type { SpiffeCa } from '../identity/ca.js';
import { WorkloadSvids } from '../identity/svid-store.js';
import { bundleSecret, svidSecret } from '../identity/sds-secrets.js';
import { workloadSpiffeId } from '../identity/types.js';
import { WorkloadApiServer } from '../identity/workload-api.js';
import { workloadIdentitySource } from '../identity/workload-source.js';
import { podIdentityByUid } from '../identity/attest.js';
import type { ObjectTranslation } from '../translate/output.js';

export interface IdentityOptions {
  trustDomain: string;
  /** Loads (or creates) the CA: from a directory, or from a Secret in cluster mode. */
  loadCa: () => Promise<SpiffeCa>;
  svidTtlSeconds: number;
  jwtTtlSeconds: number;
  /** Serve the SPIFFE Workload API on this unix socket. */
  workloadApiSocket?: string;
}

/** The assembly unit carrying the Secrets; generated, so it wins any name clash with a written resource. */
export const IDENTITY_UNIT = 'Identity secrets';

/** The SPIFFE IDs of the service accounts that have a running pod on this node. */
export function localSpiffeIds(model: Model, nodeName: string, trustDomain: string): Set<string> {
  const out = new Set<string>();
  for (const p of model.list('Pod') as Pod[]) {
    if (p.spec?.nodeName !== nodeName || p.spec?.hostNetwork) continue;
    const phase = p.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    out.add(workloadSpiffeId(trustDomain, p.metadata.namespace ?? 'default', p.spec?.serviceAccountName || 'default'));
  }
  return out;
}

export class IdentityWiring {
  private ca?: SpiffeCa;
  private svids?: WorkloadSvids;
  private model?: Model;
  private wanted = new Set<string>();
  private unit?: ObjectTranslation;
  private workloadApi?: WorkloadApiServer;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly opts: IdentityOptions,
    private readonly nodeName: string,
    private readonly log: Logger,
    /** Called when an SVID was issued or rotated, so the agent publishes the new Secrets. */
    private readonly changed: () => void,
  ) {}

  /**
   * Loads the CA; resolves once the first attempt is over. A failure (the API
   * server down, the Secret unreadable) does not stop the agent: everything
   * else serves, meshed flows fail closed in the kernel meanwhile, and the
   * load is tried again with backoff.
   */
  start(): Promise<void> {
    this.stopped = false;
    return new Promise((firstAttemptOver) => void this.load(firstAttemptOver));
  }

  private async load(firstAttemptOver: () => void): Promise<void> {
    for (let delayMs = 1000; !this.stopped && !this.ca; delayMs = Math.min(delayMs * 2, 30_000)) {
      try {
        this.ca = await this.opts.loadCa();
      } catch (e) {
        this.log.error({ err: (e as Error).message, retryInMs: delayMs }, 'workload identity: the CA could not be loaded; meshed flows wait for it');
        firstAttemptOver();
        await new Promise<void>((r) => (this.retry = setTimeout(r, delayMs)));
      }
    }
    if (!this.ca || this.stopped) return firstAttemptOver();
    this.svids = new WorkloadSvids({ ca: this.ca, ttlSeconds: this.opts.svidTtlSeconds, log: this.log });
    this.unsubscribe.push(
      this.svids.onChange(() => {
        this.unit = undefined;
        this.changed();
      }),
    );
    this.log.info({ trustDomain: this.opts.trustDomain, svidTtlSeconds: this.opts.svidTtlSeconds }, 'workload identity: CA loaded');
    const model = this.model;
    this.model = undefined;
    if (model) this.update(model);
    try {
      await this.serveWorkloadApi();
    } catch (e) {
      this.log.error({ err: (e as Error).message, socket: this.opts.workloadApiSocket }, 'workload API could not be served');
    }
    firstAttemptOver();
    this.changed();
  }

  /** Serves the Workload API; callers are attested against the latest model at each call. */
  private async serveWorkloadApi(): Promise<void> {
    const socketPath = this.opts.workloadApiSocket;
    if (!socketPath || !this.ca || !this.svids || this.workloadApi) return;
    const server = new WorkloadApiServer({
      socketPath,
      source: workloadIdentitySource(this.ca, this.svids, this.opts.jwtTtlSeconds),
      podByUid: (uid) => (this.model ? podIdentityByUid(this.model, this.opts.trustDomain, this.nodeName, uid) : undefined),
      log: this.log,
    });
    await server.start();
    this.workloadApi = server;
  }

  /** Follows the model's pods on this node: SVIDs are issued for new service accounts and dropped for gone ones. */
  update(model: Model): void {
    if (model === this.model) return;
    if (!this.svids) {
      // Kept for when the CA comes: the first SVIDs follow this model.
      this.model = model;
      return;
    }
    const changes = this.model && model.changesSince(this.model);
    this.model = model;
    if (changes && !changes.has('Pod')) return;
    const wanted = localSpiffeIds(model, this.nodeName, this.opts.trustDomain);
    if (sameSet(wanted, this.wanted)) return;
    this.wanted = wanted;
    this.svids.setWanted(wanted);
    this.unit = undefined;
  }

  /** The Secrets unit: the trust bundle and each issued SVID of this node's workloads. */
  units(): ObjectTranslation[] {
    if (!this.ca || !this.svids) return [];
    if (!this.unit) {
      const resources = [bundleSecret(this.ca.bundle())];
      for (const id of [...this.wanted].sort()) {
        const svid = this.svids.get(id);
        if (svid) resources.push(svidSecret(svid));
      }
      this.unit = { object: IDENTITY_UNIT, resources, redirects: [], issues: [], authored: 0 };
    }
    return [this.unit];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const u of this.unsubscribe.splice(0)) u();
    this.svids?.stop();
    await this.workloadApi?.close();
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
