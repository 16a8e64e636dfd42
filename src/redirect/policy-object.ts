// Loads bpf/policy.o with its maps pinned under the agent's pin directory, and
// opens those pins: the attacher and the reconciler meet only there, so either
// may start first, and a restarted agent finds the state the kernel kept.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, BpfMap } from './bpf.js';
import { BPF_FS_MAGIC, fsType } from './host.js';
import { POLICY_MAPS, POLICY_SIZES } from './policy-maps.js';

export const POLICY_OBJECT = fileURLToPath(new URL('../../build/bpf/policy.o', import.meta.url));
export const POLICY_PROGRAMS = { ingress: 'sluice_tc_ingress', egress: 'sluice_tc_egress' } as const;

/** The agent pins the policy object beside the socket LB's, in a folder of its own. */
export const policyPinDir = (agentPinDir: string) => join(agentPinDir, 'policy');

/**
 * Opens the object, reusing maps pinned in pinDir and pinning the ones it
 * creates. A pinned map that no longer fits the object is an error, not a
 * silent fresh map: the programs and the reconciler must share one.
 */
export function loadPolicyObject(pinDir: string, objectPath = POLICY_OBJECT): number {
  if (fsType(pinDir) !== BPF_FS_MAGIC) throw new Error(`${pinDir} is not on a bpffs mount; mount one first: mount -t bpf bpf /sys/fs/bpf`);
  if (!existsSync(objectPath)) throw new Error(`${objectPath} is missing; run scripts/setup.sh`);
  mkdirSync(pinDir, { recursive: true });
  try {
    return addon().openObject(objectPath, pinDir, false);
  } catch (e) {
    throw new Error(`loading the BPF object ${objectPath} failed: ${(e as Error).message}`);
  }
}

export interface PolicyMaps {
  ipcache: BpfMap;
  endpoints: BpfMap;
  policy: BpfMap;
  ct: BpfMap;
  drops: BpfMap;
  tpcfg: BpfMap;
  polgen: BpfMap;
  /** Meshed pods on other nodes; keyed like the ipcache (ipcacheKey), the value a u32 proxy port. */
  mesh: BpfMap;
  close(): void;
}

/** The number of possible CPUs: a per-CPU map's value holds one slot for each. */
export function possibleCpus(): number {
  let n = 0;
  for (const part of readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}

/** The pinned maps, created (by loading the object once) when missing. */
export function openPolicyMaps(pinDir: string, objectPath = POLICY_OBJECT): PolicyMaps {
  const bpf = addon();
  if (!Object.values(POLICY_MAPS).every((m) => existsSync(join(pinDir, m)))) bpf.closeObject(loadPolicyObject(pinDir, objectPath));
  const fds: number[] = [];
  const map = (name: string, k: number, v: number) => {
    const fd = bpf.objGet(join(pinDir, name));
    if (fd < 0) throw new Error(`${join(pinDir, name)} is not pinned`);
    fds.push(fd);
    return new BpfMap(name, fd, k, v);
  };
  try {
    return {
      ipcache: map(POLICY_MAPS.ipcache, POLICY_SIZES.ipcacheKey, POLICY_SIZES.ipcacheVal),
      endpoints: map(POLICY_MAPS.endpoints, POLICY_SIZES.endpointKey, POLICY_SIZES.endpointVal),
      policy: map(POLICY_MAPS.policy, POLICY_SIZES.policyKey, POLICY_SIZES.policyVal),
      ct: map(POLICY_MAPS.ct, POLICY_SIZES.ctKey, POLICY_SIZES.ctVal),
      drops: map(POLICY_MAPS.drops, 4, 8 * possibleCpus()),
      tpcfg: map(POLICY_MAPS.tpcfg, 4, POLICY_SIZES.tpcfg),
      polgen: map(POLICY_MAPS.polgen, 4, 4),
      mesh: map(POLICY_MAPS.mesh, POLICY_SIZES.ipcacheKey, 4),
      close: () => fds.splice(0).forEach((fd) => bpf.closeFd(fd)),
    };
  } catch (e) {
    fds.forEach((fd) => bpf.closeFd(fd));
    throw e;
  }
}
