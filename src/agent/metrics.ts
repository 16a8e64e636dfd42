// Prometheus metrics of one agent, in a registry of its own (tests run several agents in one process).
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly version = new Gauge({ name: 'sluice_xds_snapshot_version', help: 'Version of the newest published xDS snapshot', registers: [this.registry] });
  private readonly ackedVersion = new Gauge({ name: 'sluice_xds_acked_version', help: "Newest snapshot version the node's Envoy accepted", registers: [this.registry] });
  private readonly resources = new Gauge({ name: 'sluice_xds_resources', help: 'Resources in the newest snapshot', registers: [this.registry] });
  private readonly issues = new Gauge({ name: 'sluice_config_issues', help: 'Problems in the current config (invalid input or Envoy rejections)', registers: [this.registry] });
  private readonly nacks = new Counter({ name: 'sluice_xds_nacks_total', help: "Snapshot versions the node's Envoy rejected", registers: [this.registry] });
  private readonly publishes = new Counter({ name: 'sluice_xds_publishes_total', help: 'Snapshots published', registers: [this.registry] });
  private readonly frontends = new Gauge({ name: 'sluice_datapath_frontends', help: 'Service frontends in the socket load-balancer maps', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
  }

  published(version: number, resources: number, issues: number): void {
    this.version.set(version);
    this.resources.set(resources);
    this.issues.set(issues);
    this.publishes.inc();
  }

  acked(version: number): void {
    this.ackedVersion.set(version);
  }

  nacked(): void {
    this.nacks.inc();
  }

  datapathApplied(frontends: number): void {
    this.frontends.set(frontends);
  }
}
