// Typed access to the libbpf addon (native/sluice_bpf.c).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Addon {
  openObject(path: string, pinRoot: string, replaceChanged?: boolean): number;
  closeObject(handle: number): void;
  attachCgroup(handle: number, program: string, cgroupDir: string, linkPin: string): boolean;
  attachTcx(handle: number, program: string, ifindex: number, linkPin: string, egress: boolean): boolean;
  mapFd(handle: number, name: string): number;
  mapUpdate(fd: number, key: Buffer, value: Buffer): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapKeys(fd: number, keySize: number): Buffer;
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): number;
  objGet(path: string): number;
  closeFd(fd: number): void;
  linkInfo(path: string): { id: number; progId: number } | null;
  replacedMaps(handle: number): string[];
  objPin(fd: number, path: string): void;
  mapInfo(fd: number): MapInfo;
  mapCopy(fromFd: number, toFd: number, keySize: number, valueSize: number): number;
  linkDetach(path: string): boolean;
  mountBpffs(path: string): void;
  /** Reads the ring buffers pinned at `pins`; `onBatch` gets framed records (see ringConsume) as the kernel signals them. */
  ringOpen(pins: string[], onBatch: (batch: Buffer) => void): number;
  /** What the rings hold now: records framed as u32 length, u32 index of its pin, the record, padding to 8 bytes. */
  ringConsume(handle: number): Buffer;
  ringClose(handle: number): void;
}

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

const ADDON = fileURLToPath(new URL('../../native/build/Release/sluice_bpf.node', import.meta.url));

let loaded: Addon | undefined;

export function addon(): Addon {
  if (!loaded) {
    if (!existsSync(ADDON)) throw new Error(`the libbpf addon is not built (${ADDON}); run scripts/setup.sh`);
    loaded = createRequire(import.meta.url)(ADDON) as Addon;
  }
  return loaded;
}

/** A write the kernel refused part of: the first `written` entries are in the map, the rest are not. */
export class MapWriteError extends Error {
  constructor(
    readonly map: string,
    readonly written: number,
    override readonly cause: Error,
  ) {
    super(`${map}: ${cause.message}`);
  }
}

/** What the socket-LB applier needs of a map; a BpfMap, or a stand-in in unit tests. */
export interface MapIo {
  readonly name: string;
  /** Writes in order; throws MapWriteError saying how many made it. */
  updateMany(entries: [Buffer, Buffer][]): void;
  /** False when the key was not there. */
  delete(key: Buffer): boolean;
  entries(): [Buffer, Buffer][];
}

/** A BPF map by fd, with fixed key and value sizes. */
export class BpfMap implements MapIo {
  constructor(
    readonly name: string,
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
  ) {}

  update(key: Buffer, value: Buffer): void {
    addon().mapUpdate(this.fd, key, value);
  }

  updateMany(entries: [Buffer, Buffer][]): void {
    if (!entries.length) return;
    try {
      addon().mapUpdateBatch(this.fd, Buffer.concat(entries.map((e) => e[0])), Buffer.concat(entries.map((e) => e[1])), entries.length);
    } catch (e) {
      const written = (e as { written?: unknown }).written;
      throw new MapWriteError(this.name, typeof written === 'number' ? written : 0, e as Error);
    }
  }

  delete(key: Buffer): boolean {
    return addon().mapDelete(this.fd, key);
  }

  lookup(key: Buffer): Buffer | null {
    return addon().mapLookup(this.fd, key, this.valueSize);
  }

  /** Every key, read from the kernel in one call. */
  keys(): Buffer[] {
    const all = addon().mapKeys(this.fd, this.keySize);
    const out: Buffer[] = [];
    for (let o = 0; o < all.length; o += this.keySize) out.push(Buffer.from(all.subarray(o, o + this.keySize)));
    return out;
  }

  /** Every entry, read from the kernel. */
  entries(): [Buffer, Buffer][] {
    const all = addon().mapKeys(this.fd, this.keySize);
    const out: [Buffer, Buffer][] = [];
    for (let o = 0; o < all.length; o += this.keySize) {
      const k = Buffer.from(all.subarray(o, o + this.keySize));
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }
}
