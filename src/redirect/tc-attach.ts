// Puts the policy programs on the node's interfaces as they come and go,
// without anyone naming them: TC ingress on every Ethernet-like interface but
// loopback (pod veths and uplinks alike: the program tells them apart by the
// addresses it finds in the endpoints map), TC egress on veths (what the node
// itself sends to a pod). Links are pinned, one per interface and direction,
// so enforcement outlives the agent and a restarted agent adopts them. Works
// in the network namespace of the calling process.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addon } from './bpf.js';
import { loadPolicyObject, POLICY_PROGRAMS } from './policy-object.js';

const run = promisify(execFile);

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
}

export interface TcAttacherOptions {
  /** The agent's pin directory on bpffs; links go under its tc/ folder. */
  pinDir: string;
  objectPath?: string;
  /** How often to look for new and gone interfaces. Default 1000 ms. */
  intervalMs?: number;
  /** Lists the namespace's links (the output of `ip -j -d link show`); replaceable for tests. */
  listLinks?: () => Promise<LinkInfo[]>;
  onError?(message: string): void;
}

async function ipLinks(): Promise<LinkInfo[]> {
  const { stdout } = await run('ip', ['-j', '-d', 'link', 'show'], { maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as LinkInfo[];
}

/** Which hooks an interface gets. */
export function hooksFor(link: LinkInfo): ('ingress' | 'egress')[] {
  if (link.ifname === 'lo' || link.link_type !== 'ether') return [];
  return link.linkinfo?.info_kind === 'veth' ? ['ingress', 'egress'] : ['ingress'];
}

export class TcAttacher {
  private readonly handle: number;
  private readonly linkDir: string;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** "ifindex-direction" pins this process has attached or adopted. */
  private readonly attached = new Set<string>();
  /** What the last sync adopted from a previous agent rather than attached. */
  readonly adopted = new Set<string>();

  constructor(private readonly opts: TcAttacherOptions) {
    this.handle = loadPolicyObject(opts.pinDir, opts.objectPath);
    this.linkDir = join(opts.pinDir, 'tc');
    mkdirSync(this.linkDir, { recursive: true });
  }

  /** Syncs now, then every intervalMs until stop(). */
  async start(): Promise<void> {
    await this.sync();
    const tick = () => {
      this.timer = setTimeout(async () => {
        await this.sync();
        if (this.timer) tick();
      }, this.opts.intervalMs ?? 1000);
    };
    tick();
  }

  /** Stops watching; the pinned links stay, and with them enforcement. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    addon().closeObject(this.handle);
  }

  sync(): Promise<void> {
    this.running ??= this.syncOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    let links: LinkInfo[];
    try {
      links = await (this.opts.listLinks ?? ipLinks)();
    } catch (e) {
      this.opts.onError?.(`listing interfaces: ${(e as Error).message}`);
      return;
    }
    const want = new Set<string>();
    for (const link of links)
      for (const dir of hooksFor(link)) {
        const name = `${link.ifindex}-${dir}`;
        want.add(name);
        if (!this.attached.has(name)) this.attach(link, dir, name);
      }
    // An interface that went took its attachment with it; its pin is all that is left.
    for (const name of readdirSync(this.linkDir))
      if (!want.has(name)) {
        this.attached.delete(name);
        rmSync(join(this.linkDir, name), { force: true });
      }
  }

  private attach(link: LinkInfo, dir: 'ingress' | 'egress', name: string): void {
    const bpf = addon();
    const pin = join(this.linkDir, name);
    const program = POLICY_PROGRAMS[dir];
    try {
      if (bpf.attachTcx(this.handle, program, link.ifindex, pin, dir === 'egress')) this.adopted.add(name);
      this.attached.add(name);
      return;
    } catch (e) {
      // A pin left by an interface that went, its index now another's: the old link cannot take a program
      // (ENOLINK). Any other failure leaves the pin, which may be all that keeps a working attachment.
      if (!/errno 67\)/.test((e as Error).message)) {
        this.opts.onError?.(`attaching ${program} to ${link.ifname} (${dir}): ${(e as Error).message}`);
        return;
      }
      rmSync(pin, { force: true });
      try {
        bpf.attachTcx(this.handle, program, link.ifindex, pin, dir === 'egress');
        this.attached.add(name);
      } catch (again) {
        this.opts.onError?.(`attaching ${program} to ${link.ifname} (${dir}): ${(again as Error).message}; first try: ${(e as Error).message}`);
      }
    }
  }
}
