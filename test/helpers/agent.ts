import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Agent } from '../../src/agent/agent.js';
import type { ServiceDatapathOptions } from '../../src/agent/service-datapath.js';
import type { IdentityOptions } from '../../src/agent/identity-wiring.js';
import type { Logger } from '../../src/log.js';
import type { ModelSource } from '../../src/sources/source.js';
import type { StatusWriter } from '../../src/status/report.js';
import { renderBootstrap, type AdsFlavour } from '../../src/envoy/bootstrap.js';

export interface TestAgent {
  agent: Agent;
  dir: string;
  socketPath: string;
  tcpPort?: number;
  /** JSON log lines the agent wrote. */
  logs: Record<string, any>[];
  /** Atomically (re)writes one YAML file of the watched directory. */
  write(file: string, docs: object[]): void;
  bootstrap(nodeId: string, ads: AdsFlavour): Record<string, any>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface StartOptions {
  tcp?: boolean;
  /** The files are Kubernetes YAML (--source dir:) rather than raw Envoy resources. */
  kube?: boolean;
  nodeName?: string;
  /** Read cluster state from this source (the Kubernetes API, say) instead of files. */
  source?: ModelSource;
  /** Where status and Events go (cluster mode). */
  status?: StatusWriter;
  /** Where address-less listeners bind (default loopback: the agent runs without a datapath). */
  proxyAddresses?: { v4: string; v6: string };
  proxyPortRange?: [number, number];
  /** Socket load balancing in a test world's cgroup (test/helpers/netns.ts). */
  datapath?: ServiceDatapathOptions;
  /** Workload identity (the CA, SVIDs over SDS, the mesh). */
  identity?: IdentityOptions;
}

/** A port range for listeners without an address, unlikely to meet another test's. */
function proxyPortRange(): [number, number] {
  const base = 20000 + Math.floor(Math.random() * 100) * 100;
  return [base, base + 99];
}

/** A logger whose JSON lines the test can read back. */
export function recordingLogger(level = 'trace'): { log: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { log: pino({ level }, sink), lines };
}

export async function startAgent(t: Teardown, files: Record<string, object[]> = {}, opts: StartOptions = {}): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-agent-'));
  const resources = join(dir, 'resources');
  const socketPath = join(dir, 'run', 'xds.sock');
  const { log, lines: logs } = recordingLogger();
  const write = (file: string, docs: object[]) => {
    const tmp = join(resources, `.${file}.tmp`);
    writeFileSync(tmp, docs.map((d) => stringify(d)).join('---\n'));
    renameSync(tmp, join(resources, file));
  };
  mkdirSync(resources);
  for (const [f, docs] of Object.entries(files)) write(f, docs);
  const agent = new Agent({
    nodeName: opts.nodeName ?? 'test-node',
    ...(opts.source ? { source: opts.source } : opts.kube ? { kubeDirs: [resources] } : { resourceDirs: [resources] }),
    stateDir: join(dir, 'state'),
    proxyPortRange: opts.proxyPortRange ?? proxyPortRange(),
    datapath: opts.datapath,
    status: opts.status,
    identity: opts.identity,
    // The agent runs in the machine's namespace: with a datapath it must add nothing to the machine's lo.
    proxyAddresses: opts.proxyAddresses ?? (opts.datapath ? { v4: '127.0.0.1', v6: '::1' } : undefined),
    socketPath,
    tcpAddress: opts.tcp ? '127.0.0.1:0' : undefined,
    log,
  });
  const addresses = await agent.start();
  t.teardown(async () => {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    agent,
    dir: resources,
    socketPath,
    tcpPort: addresses.tcpPort,
    logs,
    write,
    bootstrap: (nodeId, ads) => renderBootstrap({ nodeId, ads, socketPath, healthPort: 0 }),
  };
}
