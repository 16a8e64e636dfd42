// Byte layouts of the sock_lb maps; they mirror the structs in bpf/sock_lb.c.
import { isIPv4, isIPv6 } from 'node:net';

export const SVC_FLAG_AFFINITY = 0x1;
export const SVC_FLAG_MAGLEV = 0x2;
export const SVC_FLAG_L7 = 0x4;
export const MAGLEV_M = 251;

export const SIZES = {
  svcKey: 24,
  svcVal: 16,
  backendId: 4,
  backend: 20,
  maglevKey: 8,
  maglevVal: 4,
  revNatKey: 32,
  revNatVal: 24,
  affinityKey: 16,
  affinityVal: 8,
  config: 32,
} as const;

export const PROTO = { TCP: 6, UDP: 17 } as const;

/** 16 bytes: IPv4 in the first 4, network byte order. */
export function encodeAddr(ip: string, buf: Buffer, offset: number): 4 | 6 {
  if (isIPv4(ip)) {
    ip.split('.').forEach((o, i) => buf.writeUInt8(Number(o), offset + i));
    return 4;
  }
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), offset + i * 2));
  return 6;
}

export interface SvcKey {
  vip: string;
  port: number;
  proto: keyof typeof PROTO;
  slot: number;
}

export function svcKey(k: SvcKey): Buffer {
  const b = Buffer.alloc(SIZES.svcKey);
  const family = encodeAddr(k.vip, b, 0);
  b.writeUInt16BE(k.port, 16);
  b.writeUInt8(PROTO[k.proto], 18);
  b.writeUInt8(family, 19);
  b.writeUInt16LE(k.slot, 20);
  return b;
}

export interface SvcMaster {
  count: number;
  revNatId: number;
  l7Port: number;
  flags: number;
  affinityTimeout: number;
}

export function svcMaster(v: SvcMaster): Buffer {
  const b = Buffer.alloc(SIZES.svcVal);
  b.writeUInt16LE(v.count, 4);
  b.writeUInt16LE(v.revNatId, 6);
  b.writeUInt16BE(v.l7Port, 8);
  b.writeUInt8(v.flags, 10);
  b.writeUInt32LE(v.affinityTimeout, 12);
  return b;
}

export function svcSlot(backendId: number): Buffer {
  const b = Buffer.alloc(SIZES.svcVal);
  b.writeUInt32LE(backendId, 0);
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export function backend(ip: string, port: number): Buffer {
  const b = Buffer.alloc(SIZES.backend);
  const family = encodeAddr(ip, b, 0);
  b.writeUInt16BE(port, 16);
  b.writeUInt8(family, 18);
  return b;
}

export function maglevKey(revNatId: number, index: number): Buffer {
  const b = Buffer.alloc(SIZES.maglevKey);
  b.writeUInt16LE(revNatId, 0);
  b.writeUInt32LE(index, 4);
  return b;
}

/** The one entry of sluice_config: the node proxy addresses L7 redirects go to. */
export function config(proxy4: string, proxy6: string): Buffer {
  const b = Buffer.alloc(SIZES.config);
  if (encodeAddr(proxy4, b, 0) !== 4) throw new Error(`the IPv4 proxy address ${proxy4} is not IPv4`);
  if (encodeAddr(proxy6, b, 16) !== 6) throw new Error(`the IPv6 proxy address ${proxy6} is not IPv6`);
  return b;
}
