// Reads the datapath's flow events: the ring buffers the policy and socket-LB
// objects pin in the agent's pin directory, through the addon's consumer on
// the libuv loop. Turns events on (the BPF side's config entry) with its rate
// limits, and reports what the kernel could not deliver: records lost to a
// full ring and events the per-CPU rate limits suppressed.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from '../redirect/bpf.js';
import { policyPinDir, possibleCpus } from '../redirect/policy-object.js';
import { decodeBatch, monoToEpochNs, type DecodeContext } from './bpf-events.js';
import type { Flow } from './flow.js';

export const EVENT_MAPS = { ring: 'sluice_events', config: 'sluice_evcfg', stats: 'sluice_evstat' } as const;

/** Per CPU: tokens a second and bucket size, for drop events and for flow events (starts, ends, translations). 0: unlimited. */
export interface EventConfig {
  enabled: boolean;
  dropRate: number;
  dropBurst: number;
  flowRate: number;
  flowBurst: number;
}

/** A drop flood costs userspace at most ~1k events a second per CPU; flows get far more room. */
export const DEFAULT_EVENT_CONFIG: EventConfig = { enabled: true, dropRate: 1000, dropBurst: 1000, flowRate: 20000, flowBurst: 5000 };

export interface EventLoss {
  /** Records a full ring had no room for. */
  lost: number;
  /** Events the rate limits held back. */
  dropsSuppressed: number;
  flowsSuppressed: number;
}

export function eventConfigValue(c: EventConfig): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(c.enabled ? 1 : 0, 0);
  [c.dropRate, c.dropBurst, c.flowRate, c.flowBurst].forEach((n, i) => b.writeUInt32LE(n >>> 0, 4 + i * 4));
  return b;
}

/** The pin directories of the agent's objects that carry events: the policy object's and the socket LB's. */
export const agentEventDirs = (agentPinDir: string) => [policyPinDir(agentPinDir), agentPinDir];

export interface BpfEventReaderOptions extends Partial<Omit<DecodeContext, 'monoToEpochNs'>> {
  /** Pin directories to read; those whose objects were never loaded (no ring pinned) are skipped. */
  pinDirs: string[];
  onFlows(flows: Flow[]): void;
  config?: EventConfig;
}

export class BpfEventReader {
  private handle?: number;
  private readonly ctx: DecodeContext;

  private constructor(
    readonly pinDirs: string[],
    opts: BpfEventReaderOptions,
  ) {
    this.ctx = { nodeName: opts.nodeName ?? '', serviceOf: opts.serviceOf, monoToEpochNs: monoToEpochNs() };
  }

  /** Starts reading and turns events on in every directory found. Throws when no directory has a ring. */
  static open(opts: BpfEventReaderOptions): BpfEventReader {
    const dirs = opts.pinDirs.filter((d) => existsSync(join(d, EVENT_MAPS.ring)));
    if (!dirs.length) throw new Error(`no flow event ring is pinned in ${opts.pinDirs.join(', ')}: the datapath objects of this version were never loaded there`);
    const r = new BpfEventReader(dirs, opts);
    r.handle = addon().ringOpen(
      dirs.map((d) => join(d, EVENT_MAPS.ring)),
      (batch) => opts.onFlows(decodeBatch(batch, r.ctx)),
    );
    try {
      r.configure(opts.config ?? DEFAULT_EVENT_CONFIG);
    } catch (e) {
      r.close();
      throw e;
    }
    return r;
  }

  /** Writes the config entry of every object read; { enabled: false } stops the kernel emitting. */
  configure(c: EventConfig): void {
    writeEventConfig(this.pinDirs, c);
  }

  /** The rings' contents now, without waiting for the loop (tests, and a last read before close). */
  drain(): Flow[] {
    if (this.handle === undefined) return [];
    return decodeBatch(addon().ringConsume(this.handle), this.ctx);
  }

  /** Totals since the objects were first loaded, over every CPU and object. */
  loss(): EventLoss {
    return readEventLoss(this.pinDirs);
  }

  /** Stops reading; the kernel keeps emitting until configure({ enabled: false }), counting what the ring cannot hold. */
  close(): void {
    if (this.handle === undefined) return;
    addon().ringClose(this.handle);
    this.handle = undefined;
  }
}

/** Writes the config entry of the objects pinned in `pinDirs` (without reading their rings: a bench tuning a running agent's limits). */
export function writeEventConfig(pinDirs: string[], c: EventConfig): void {
  for (const d of pinDirs) withMap(join(d, EVENT_MAPS.config), (fd) => addon().mapUpdate(fd, Buffer.alloc(4), eventConfigValue(c)));
}

/** The loss counters of the objects pinned in `pinDirs`, summed over every CPU and object. */
export function readEventLoss(pinDirs: string[]): EventLoss {
  const cpus = possibleCpus();
  const out: EventLoss = { lost: 0, dropsSuppressed: 0, flowsSuppressed: 0 };
  const fields = ['lost', 'dropsSuppressed', 'flowsSuppressed'] as const;
  for (const d of pinDirs)
    withMap(join(d, EVENT_MAPS.stats), (fd) =>
      fields.forEach((f, i) => {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(i, 0);
        const v = addon().mapLookup(fd, key, 8 * cpus);
        for (let c = 0; v && c < cpus; c++) out[f] += Number(v.readBigUInt64LE(c * 8));
      }),
    );
  return out;
}

function withMap<T>(pin: string, use: (fd: number) => T): T {
  const fd = addon().objGet(pin);
  if (fd < 0) throw new Error(`${pin} is not pinned`);
  try {
    return use(fd);
  } finally {
    addon().closeFd(fd);
  }
}
