// Byte layouts of the policy maps; they mirror the structs in bpf/policy.c.
// Keys are built canonically (host bits of a prefix zeroed), so that what the
// kernel hands back compares equal to what desired state encodes.
import { isIPv4 } from 'node:net';
import type { PolicyEntry, Verdict } from '../policy/datapath-state.js';
import { encodeAddr } from './maps.js';

export const POLICY_MAPS = {
  ipcache: 'sluice_ipcache',
  endpoints: 'sluice_endpts',
  policy: 'sluice_policy',
  ct: 'sluice_ct',
  drops: 'sluice_drops',
  tpcfg: 'sluice_tpcfg',
  polgen: 'sluice_polgen',
  mesh: 'sluice_meshdst',
} as const;

export const POLICY_SIZES = {
  ipcacheKey: 21,
  ipcacheVal: 4,
  endpointKey: 20,
  endpointVal: 8,
  policyKey: 14,
  policyVal: 4,
  ctKey: 40,
  ctVal: 16,
  tpcfg: 28,
} as const;

/** Indexes of sluice_drops, by the name `dropCounters()` reports. */
export const DROP_REASONS = ['no-allow', 'deny-rule', 'no-proxy', 'assign-failed', 'redirect-not-tcp', 'not-meshed'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const VERDICT_CODE: Record<Verdict, number> = { allow: 1, deny: 2, redirect: 3, mesh: 4 };
export const EP_INGRESS_ENFORCED = 0x1;
export const EP_EGRESS_ENFORCED = 0x2;
export const EP_MESHED = 0x4;

/** 16 bytes, IPv4 as ::ffff:a.b.c.d, so one map serves both families. */
export function addr16(ip: string): Buffer {
  const b = Buffer.alloc(16);
  if (isIPv4(ip)) {
    b.writeUInt16BE(0xffff, 10);
    encodeAddr(ip, b, 12);
  } else encodeAddr(ip, b, 0);
  return b;
}

export function addrString(b: Buffer): string {
  if (b.subarray(0, 10).every((x) => x === 0) && b.readUInt16BE(10) === 0xffff) return [...b.subarray(12, 16)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

function zeroHostBits(b: Buffer, from: number, bits: number): void {
  for (let i = 0; i < b.length - from; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    b[from + i] &= (0xff00 >> keep) & 0xff;
  }
}

/** "10.0.0.0/8" in set 1 -> LPM key with prefix length 8 + 104 over (set, v4-mapped address). */
export function ipcacheKey(prefix: string, set: number): Buffer {
  const [ip, lenText] = prefix.split('/');
  const v4 = isIPv4(ip);
  const max = v4 ? 32 : 128;
  const len = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`bad prefix length in ${prefix}`);
  const b = Buffer.alloc(POLICY_SIZES.ipcacheKey);
  const bits = 8 + (v4 ? 96 : 0) + len;
  b.writeUInt32LE(bits, 0);
  b.writeUInt8(set, 4);
  addr16(ip).copy(b, 5);
  zeroHostBits(b, 4, bits);
  return b;
}

export function endpointKey(ip: string, set: number): Buffer {
  const b = Buffer.alloc(POLICY_SIZES.endpointKey);
  addr16(ip).copy(b, 0);
  b.writeUInt32LE(set, 16);
  return b;
}

/** Which set an ipcache, endpoints or policy key belongs to. */
export const keySet = {
  ipcache: (k: Buffer) => k.readUInt8(4),
  endpoints: (k: Buffer) => k.readUInt32LE(16),
  policy: (k: Buffer) => (k.readUInt8(6) >> 1) & 1,
  mesh: (k: Buffer) => k.readUInt8(4),
};

export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

export function endpointVal(identity: number, id: number, flags: number): Buffer {
  const b = Buffer.alloc(POLICY_SIZES.endpointVal);
  b.writeUInt32LE(identity >>> 0, 0);
  b.writeUInt16LE(id, 4);
  b.writeUInt8(flags, 6);
  return b;
}

export function decodeEndpointVal(b: Buffer): { identity: number; id: number; flags: number } {
  return { identity: b.readUInt32LE(0), id: b.readUInt16LE(4), flags: b.readUInt8(6) };
}

export type PolicyKeyFields = Pick<PolicyEntry, 'endpoint' | 'direction' | 'identity' | 'proto' | 'port' | 'portPrefixLen'>;

/** Proto 0 means any protocol and any port: the key stops after the identity. */
export function policyKey(e: PolicyKeyFields, set: number): Buffer {
  const b = Buffer.alloc(POLICY_SIZES.policyKey);
  const bits = e.proto === 0 ? 56 : 64 + e.portPrefixLen;
  b.writeUInt32LE(bits, 0);
  b.writeUInt16BE(e.endpoint, 4);
  b.writeUInt8((e.direction === 'egress' ? 1 : 0) | (set << 1), 6);
  b.writeUInt32BE(e.identity >>> 0, 7);
  b.writeUInt8(e.proto, 11);
  b.writeUInt16BE(e.port, 12);
  zeroHostBits(b, 4, bits);
  return b;
}

export function policyVal(verdict: Verdict, proxyPort = 0): Buffer {
  const b = Buffer.alloc(POLICY_SIZES.policyVal);
  b.writeUInt8(VERDICT_CODE[verdict], 0);
  b.writeUInt16LE(proxyPort, 2);
  return b;
}

/** The conntrack key's two addresses, to find a removed endpoint's flows. */
export function ctAddresses(b: Buffer): [Buffer, Buffer] {
  return [b.subarray(0, 16), b.subarray(16, 32)];
}

export interface TproxyConfig {
  /** Listener address for new redirected connections; unset: the flow's own destination (a wildcard listener matches it). */
  proxy4?: string;
  proxy6?: string;
  mark: number;
  markMask: number;
}

export function tpcfg(c: TproxyConfig): Buffer {
  const b = Buffer.alloc(POLICY_SIZES.tpcfg);
  if (c.proxy4) encodeAddr(c.proxy4, b, 0);
  if (c.proxy6) encodeAddr(c.proxy6, b, 4);
  b.writeUInt32LE(c.mark >>> 0, 20);
  b.writeUInt32LE(c.markMask >>> 0, 24);
  return b;
}
