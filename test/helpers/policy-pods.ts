// Pods as a routing CNI wires them: each pod a netns with eth0 holding its
// /32 address, its default route through a link-local gateway that the node
// side of the veth holds (as the CNI ptp plugin does), and a /32 route per pod
// on the node. The node netns comes from netnsWorld; removal at teardown.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { NetnsWorld } from './netns.js';
import { stopChild } from './netns.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

const here = new URL('.', import.meta.url).pathname;
export const GATEWAY = '169.254.1.1';
export const GATEWAY6 = 'fd00:244::1';

export interface Pod {
  ns: string;
  ip: string;
  ip6: string;
  /** The node side of its veth. */
  veth: string;
  ifindex(): number;
  /** Runs netns-client.mjs in the pod; returns its results. */
  client(plan: object[]): any[][];
  /** The same, without waiting: for loops that run while the test changes things. */
  clientAsync(plan: object[]): Promise<any[][]>;
  /** Starts netns-server.mjs in the pod; resolves once its servers listen. */
  servers(cfg: object): Promise<ChildProcess>;
  /** Runs any command in the pod (its netns and cgroup) to completion; a non-zero exit is returned, not thrown. */
  exec(cmd: string, args: string[]): { code: number | null; stdout: string; stderr: string };
}

export function podMaker(t: Teardown, node: NetnsWorld) {
  const made: string[] = [];
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    await Promise.all(children.map(stopChild));
    for (const ns of made)
      try {
        execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
  });
  node.sh('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  node.sh('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  /** `cgroupDir`: the pod's own cgroup, which its clients and servers join (else the node world's). */
  return (k: number, ip: string, ip6: string, opts: { cgroupDir?: string } = {}): Pod => {
    const cgroupDir = opts.cgroupDir ?? node.cgroupDir;
    const ns = `${node.ns}-q${k}`;
    const veth = `lxc${k}`;
    execFileSync('ip', ['netns', 'add', ns]);
    made.push(ns);
    const psh = (cmd: string, args: string[]) => execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8' });
    node.sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    node.sh('ip', ['addr', 'add', `${GATEWAY}/32`, 'dev', veth]);
    node.sh('ip', ['link', 'set', veth, 'up']);
    node.sh('ip', ['route', 'add', `${ip}/32`, 'dev', veth]);
    // nodad: usable at once, not after duplicate address detection's second or two.
    node.sh('ip', ['addr', 'add', `${GATEWAY6}/128`, 'dev', veth, 'nodad']);
    node.sh('ip', ['-6', 'route', 'add', `${ip6}/128`, 'dev', veth]);
    psh('ip', ['link', 'set', 'lo', 'up']);
    psh('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    psh('ip', ['link', 'set', 'eth0', 'up']);
    psh('ip', ['route', 'add', GATEWAY, 'dev', 'eth0', 'scope', 'link']);
    psh('ip', ['route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0']);
    psh('ip', ['addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad']);
    psh('ip', ['-6', 'route', 'add', GATEWAY6, 'dev', 'eth0']);
    psh('ip', ['-6', 'route', 'add', 'default', 'via', GATEWAY6, 'dev', 'eth0']);
    const inCgroup = (file: string, arg: object) => `echo $$ > ${cgroupDir}/cgroup.procs && exec ${process.execPath} ${join(here, file)} '${JSON.stringify(arg)}'`;
    const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
    const script = (plan: object[]) => inCgroup('netns-client.mjs', plan);
    return {
      ns,
      ip,
      ip6,
      veth,
      ifindex: () => JSON.parse(node.sh('ip', ['-j', 'link', 'show', veth]))[0].ifindex,
      client: (plan) => JSON.parse(execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, 'sh', '-c', script(plan)], { encoding: 'utf8' })),
      clientAsync: (plan) =>
        new Promise((resolve, reject) => {
          const c = spawn('nsenter', [`--net=/var/run/netns/${ns}`, 'sh', '-c', script(plan)], { stdio: ['ignore', 'pipe', 'inherit'] });
          children.push(c);
          let out = '';
          c.stdout!.on('data', (d) => (out += d));
          c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited with ${code}`))));
        }),
      servers: (cfg) =>
        new Promise((resolve, reject) => {
          // Servers join a cgroup only when the pod has its own, as they always did.
          const cmd = opts.cgroupDir ? ['sh', '-c', inCgroup('netns-server.mjs', cfg)] : [process.execPath, join(here, 'netns-server.mjs'), JSON.stringify(cfg)];
          const c = spawn('nsenter', [`--net=/var/run/netns/${ns}`, ...cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
          children.push(c);
          c.stdout!.on('data', (d) => String(d).includes('ready') && resolve(c));
          c.on('exit', (code) => reject(new Error(`servers exited with ${code}`)));
        }),
      exec: (cmd, args) => {
        const r = spawnSync('nsenter', [`--net=/var/run/netns/${ns}`, 'sh', '-c', `echo $$ > ${cgroupDir}/cgroup.procs && exec ${[cmd, ...args].map(quote).join(' ')}`], { encoding: 'utf8' });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      },
    };
  };
}
