// Writes what the agent found back to the API: HTTPRoute parent status for
// the mesh parents we serve, and Warning Events on objects with issues (an
// Envoy NACK among them). Only differences are written; writes are serialized.
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import type { Model } from '../model/model.js';
import { API_VERSIONS, type HTTPRoute, type Kind, type ModelObject } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';
import { CONTROLLER_NAME, routeParentStatuses, type RouteParentStatus } from '../translate/route-status.js';
import type { StatusReport, StatusWriter } from './report.js';

/** Events a single report may create, so a broken rollout cannot flood the API server. */
const MAX_EVENTS_PER_REPORT = 50;
const EVENT_MESSAGE_LIMIT = 1024;

type StoredCondition = RouteParentStatus['conditions'][number] & { lastTransitionTime?: string };
type StoredParent = Omit<RouteParentStatus, 'conditions'> & { conditions?: StoredCondition[] };

/** "Kind ns/name" back to the object it names. */
function resolve(model: Model, described: string): ModelObject | undefined {
  const space = described.indexOf(' ');
  const kind = described.slice(0, space) as Kind;
  return API_VERSIONS[kind] ? model.get(kind, described.slice(space + 1)) : undefined;
}

const sameParentRef = (a: RouteParentStatus['parentRef'], b: RouteParentStatus['parentRef']) =>
  a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '') && (a.kind ?? '') === (b.kind ?? '') && (a.group ?? '') === (b.group ?? '') && a.port === b.port && a.sectionName === b.sectionName;

const conditionKey = (c: StoredCondition) => `${c.type}|${c.status}|${c.reason}|${c.message}|${c.observedGeneration}`;

/** Our parents as they should be stored, keeping transition times of conditions that did not change. */
function withTransitionTimes(want: RouteParentStatus[], had: StoredParent[], now: string): StoredParent[] {
  return want.map((p) => {
    const prior = had.find((h) => sameParentRef(h.parentRef, p.parentRef));
    return {
      ...p,
      conditions: p.conditions.map((c) => {
        const old = prior?.conditions?.find((o) => o.type === c.type);
        return { ...c, lastTransitionTime: old && old.status === c.status ? (old.lastTransitionTime ?? now) : now };
      }),
    };
  });
}

function sameStatus(want: RouteParentStatus[], had: StoredParent[]): boolean {
  if (want.length !== had.length) return false;
  return want.every((p) => {
    const h = had.find((x) => sameParentRef(x.parentRef, p.parentRef));
    return !!h && (h.conditions ?? []).map(conditionKey).sort().join('\n') === p.conditions.map(conditionKey).sort().join('\n');
  });
}

export class KubeStatusWriter implements StatusWriter {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  /** Issues already reported as Events, so each is reported once while it lasts. */
  private evented = new Set<string>();
  private pending: StatusReport | undefined;
  private running: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    private readonly nodeName: string,
    private readonly log: Logger,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  /** Queues a report; only the newest one waiting is written. */
  write(report: StatusReport): void {
    this.pending = report;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const r = this.pending;
      this.pending = undefined;
      await this.writeRoutes(r).catch((e) => this.log.warn({ err: e }, 'writing HTTPRoute status failed'));
      await this.writeEvents(r).catch((e) => this.log.warn({ err: e }, 'writing Events failed'));
    }
  }

  private async writeRoutes({ model, issues }: StatusReport): Promise<void> {
    const byObject = new Map<string, TranslationIssue[]>();
    for (const i of issues) byObject.set(i.object, [...(byObject.get(i.object) ?? []), i]);
    for (const route of model.httpRoutes()) {
      const want = routeParentStatuses(route, byObject.get(`HTTPRoute ${route.metadata.namespace}/${route.metadata.name}`) ?? []);
      const parents: StoredParent[] = (route as HTTPRoute & { status?: { parents?: StoredParent[] } }).status?.parents ?? [];
      const ours = parents.filter((p) => p.controllerName === CONTROLLER_NAME);
      if (sameStatus(want, ours)) continue;
      const others = parents.filter((p) => p.controllerName !== CONTROLLER_NAME);
      const body = {
        // A stale resourceVersion makes the write fail with 409; the watch then brings the newer route and a fresh report.
        metadata: { resourceVersion: route.metadata.resourceVersion },
        status: { parents: [...others, ...withTransitionTimes(want, ours, new Date().toISOString())] },
      };
      try {
        await this.custom.patchNamespacedCustomObjectStatus(
          { group: 'gateway.networking.k8s.io', version: 'v1', namespace: route.metadata.namespace!, plural: 'httproutes', name: route.metadata.name, body },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        this.log.debug({ route: `${route.metadata.namespace}/${route.metadata.name}` }, 'HTTPRoute status written');
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code !== 409 && code !== 404) throw e;
      }
    }
  }

  private async writeEvents({ model, issues }: StatusReport): Promise<void> {
    const now = new Set<string>();
    let created = 0;
    for (const issue of issues) {
      const key = `${issue.object}\n${issue.field}\n${issue.message}`;
      now.add(key);
      if (this.evented.has(key) || created >= MAX_EVENTS_PER_REPORT) continue;
      const o = resolve(model, issue.object);
      if (!o?.metadata.uid) continue;
      const namespace = o.metadata.namespace ?? 'default';
      const time = new Date();
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${o.metadata.name}.`, namespace },
          involvedObject: { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, uid: o.metadata.uid, resourceVersion: o.metadata.resourceVersion },
          type: 'Warning',
          reason: issue.reason ?? 'InvalidConfig',
          message: `${issue.field ? `${issue.field}: ` : ''}${issue.message}`.slice(0, EVENT_MESSAGE_LIMIT),
          source: { component: 'sluice-agent', host: this.nodeName },
          reportingComponent: 'sluice.io/agent',
          reportingInstance: this.nodeName,
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      });
      this.evented.add(key);
      created++;
    }
    // Forget issues that are gone, so one that comes back is reported again.
    this.evented = new Set([...this.evented].filter((k) => now.has(k)));
  }

  async stop(): Promise<void> {
    this.pending = undefined;
    await this.running;
  }
}
