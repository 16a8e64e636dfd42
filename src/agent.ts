import type { Logger } from './log.js';
import { EnvoyResourceDir } from './sources/envoy-resource-dir.js';
import { watchDir } from './sources/watch-dir.js';
import { Snapshot } from './xds/snapshot.js';
import { ANY_NODE, SnapshotCache } from './xds/snapshot-cache.js';
import { XdsServer, type XdsServerAddresses } from './xds/server.js';

export interface AgentOptions {
  resourcesDir: string;
  socketPath?: string;
  tcpAddress?: string;
  log: Logger;
  watch?: boolean;
}

/** Serves the node's Envoy what the source says, re-reading it when it changes. */
export class Agent {
  readonly cache = new SnapshotCache();
  private readonly server: XdsServer;
  private readonly source: EnvoyResourceDir;
  private unwatch: (() => void) | undefined;
  private version = 0;

  constructor(private readonly opts: AgentOptions) {
    this.server = new XdsServer({ cache: this.cache, log: opts.log, socketPath: opts.socketPath, tcpAddress: opts.tcpAddress });
    this.source = new EnvoyResourceDir(opts.resourcesDir);
  }

  get currentVersion(): number {
    return this.version;
  }

  async start(): Promise<XdsServerAddresses> {
    this.reload();
    const addresses = await this.server.start();
    if (this.opts.watch !== false) this.unwatch = watchDir(this.opts.resourcesDir, () => this.reload());
    return addresses;
  }

  /** Re-reads the source and publishes a snapshot; returns its version. */
  reload(): number {
    const { log } = this.opts;
    try {
      const { resources, errors } = this.source.load();
      for (const e of errors) log.error({ file: e.file, document: e.index, object: e.object, error: e.message }, 'bad resource; its last good version, if any, keeps serving');
      this.version = this.cache.setSnapshot(ANY_NODE, Snapshot.fromResources(resources));
      log.info({ version: this.version, resources: resources.length, errors: errors.length }, 'snapshot published');
    } catch (e) {
      log.error({ err: e }, 'reload failed; the previous snapshot keeps serving');
    }
    return this.version;
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    await this.server.stop();
  }
}
