import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export function envoyBinary(): string {
  const candidates = [process.env.SLUICE_ENVOY, `${process.env.SLUICE_CACHE ?? '/var/cache/sluice'}/bin/envoy`].filter(Boolean) as string[];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`Envoy binary not found (looked at ${candidates.join(', ')}); run scripts/setup.sh`);
  return found;
}

export interface EnvoyHandle {
  readonly pid: number;
  /** "http://127.0.0.1:PORT" for a TCP admin, "unix:PATH" for the bootstrap's admin socket. */
  readonly adminUrl: string;
  /** GET on the admin API, whichever way it listens. */
  adminGet(path: string): Promise<{ status: number; body: string }>;
  readonly logs: () => string;
  configDump(): Promise<ConfigDump>;
  stats(filter: string): Promise<Record<string, number>>;
  /** The hosts Envoy holds for a cluster, as "address:port", sorted. */
  clusterHosts(cluster: string): Promise<string[]>;
  stop(): Promise<void>;
}

export interface ConfigDump {
  listeners: Record<string, any>;
  routes: Record<string, any>;
  clusters: Record<string, any>;
  endpoints: Record<string, any>;
  raw: any;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A GET to an admin API at "host:port" or, when it starts with "/", at a unix socket. */
export function adminRequest(address: string, path: string): Promise<{ status: number; body: string }> {
  const [host, port] = address.startsWith('/') ? [undefined, undefined] : address.split(/:(?=\d+$)/);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: address.startsWith('/') ? address : undefined, host, port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts a real Envoy from `bootstrap` (its admin on a unix socket, or TCP port
 * 0) and stops it, by PID, at teardown. With `netns` it runs in that test
 * network namespace, its admin API on a unix socket the test reaches from outside.
 * With `logFile`, its output (the stdout access logs among it) also goes there.
 */
export async function startEnvoy(t: Teardown, bootstrap: object, extraArgs: string[] = [], netns?: string, logFile?: string): Promise<EnvoyHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-envoy-'));
  const config = join(dir, 'bootstrap.json');
  const adminPath = join(dir, 'admin-address');
  const admin = netns ? { admin: { address: { pipe: { path: join(dir, 'admin.sock') } } } } : {};
  writeFileSync(config, JSON.stringify({ ...bootstrap, ...admin }));
  let output = '';
  const args = ['-c', config, '--admin-address-path', adminPath, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'warn', ...extraArgs];
  // nsenter enters the namespace and execs Envoy: the child's PID is Envoy's.
  const child: ChildProcess = netns
    ? spawn('nsenter', [`--net=/var/run/netns/${netns}`, envoyBinary(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(envoyBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const take = (d: Buffer) => ((output += d), logFile && appendFileSync(logFile, d));
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  let exited = false;
  child.on('exit', () => (exited = true));
  const stop = async () => {
    if (!exited && child.pid) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && !exited; i++) await sleep(50);
      if (!exited) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  for (let i = 0; !existsSync(adminPath) || readFileSync(adminPath, 'utf8').trim() === ''; i++) {
    if (exited) throw new Error(`envoy exited during start:\n${output}`);
    if (i > 200) throw new Error(`envoy admin did not come up in 20 s:\n${output}`);
    await sleep(100);
  }
  const address = readFileSync(adminPath, 'utf8').trim();
  const adminGet = (path: string) => adminRequest(address, path);
  const json = async (path: string) => JSON.parse((await adminGet(path)).body);
  const handle: EnvoyHandle = {
    pid: child.pid!,
    adminUrl: address.startsWith('/') ? `unix:${address}` : `http://${address}`,
    adminGet,
    logs: () => output,
    async configDump() {
      return parseConfigDump(await json('/config_dump?include_eds'));
    },
    async stats(filter: string) {
      const text = (await adminGet(`/stats?filter=${encodeURIComponent(filter)}`)).body;
      const out: Record<string, number> = {};
      for (const line of text.split('\n')) {
        const m = /^(\S+): (\d+)$/.exec(line);
        if (m) out[m[1]] = Number(m[2]);
      }
      return out;
    },
    async clusterHosts(cluster: string) {
      const j = await json('/clusters?format=json');
      const c = (j.cluster_statuses ?? []).find((s: any) => s.name === cluster);
      return (c?.host_statuses ?? []).map((h: any) => `${h.address.socket_address.address}:${h.address.socket_address.port_value}`).sort();
    },
    stop,
  };
  return handle;
}

function parseConfigDump(raw: any): ConfigDump {
  const dump: ConfigDump = { listeners: {}, routes: {}, clusters: {}, endpoints: {}, raw };
  for (const c of raw.configs ?? []) {
    const type: string = c['@type'] ?? '';
    if (type.endsWith('ListenersConfigDump'))
      for (const l of c.dynamic_listeners ?? []) if (l.active_state) dump.listeners[l.name] = l.active_state.listener;
    if (type.endsWith('RoutesConfigDump'))
      for (const r of c.dynamic_route_configs ?? []) dump.routes[r.route_config.name] = r.route_config;
    if (type.endsWith('ClustersConfigDump'))
      for (const cl of c.dynamic_active_clusters ?? []) dump.clusters[cl.cluster.name] = cl.cluster;
    if (type.endsWith('EndpointsConfigDump'))
      for (const e of c.dynamic_endpoint_configs ?? []) dump.endpoints[e.endpoint_config.cluster_name] = e.endpoint_config;
  }
  return dump;
}

/** Polls `check` until it returns a truthy value; throws with the last error after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await sleep(50);
  }
}
