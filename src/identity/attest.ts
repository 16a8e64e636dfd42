// Workload attestation: which pod a local process belongs to, from the cgroup
// the kernel reports for it. Kubelet names each pod's cgroup after its uid,
// with the cgroupfs driver `.../pod<uid>/<container>` and with the systemd
// driver `.../kubepods-<qos>-pod<uid with _ for ->.slice/...`. Pure except
// attestPid, which reads /proc.
import { readFileSync } from 'node:fs';
import type { Model } from '../model/model.js';
import { workloadSpiffeId } from './types.js';

export type Attestation = { podUid: string } | { error: string };

// A UUID (dashes, or underscores in systemd unit names) or a static pod's 32 hex digits.
const POD_COMPONENT = /(?:^|-)pod([0-9a-f]{8}([-_])[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?$/;

/**
 * The pod uid in the contents of a /proc/<pid>/cgroup file. Every hierarchy
 * (v1 and the unified one) must name the same pod; a process whose lines
 * disagree is not attested.
 */
export function podUidFromCgroup(contents: string): Attestation {
  const uids = new Set<string>();
  for (const line of contents.split('\n')) {
    // hierarchy-id:controllers:path; the path may itself contain ':'.
    const path = line.split(':').slice(2).join(':');
    for (const component of path.split('/')) {
      const m = POD_COMPONENT.exec(component);
      if (m) uids.add(m[1].replaceAll('_', '-'));
    }
  }
  if (uids.size === 0) return { error: 'not in a pod cgroup' };
  if (uids.size > 1) return { error: `cgroups name several pods (${[...uids].join(', ')})` };
  return { podUid: [...uids][0] };
}

/** Attests a process by pid; read at once, since a pid is only meaningful while its process lives. */
export function attestPid(pid: number, procRoot = '/proc'): Attestation {
  if (!Number.isInteger(pid) || pid <= 0) return { error: `no peer pid (${pid})` };
  let contents: string;
  try {
    contents = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
  } catch (e) {
    return { error: `reading ${procRoot}/${pid}/cgroup: ${(e as Error).message}` };
  }
  return podUidFromCgroup(contents);
}

export interface PodIdentity {
  /** "ns/name" */
  pod: string;
  spiffeId: string;
}

/**
 * The pod with this uid among the pods of `node` in the model, and the SPIFFE
 * ID of its service account. Mesh membership does not matter: a pod outside
 * the mesh still has an identity to ask for.
 */
export function podIdentityByUid(model: Model, trustDomain: string, node: string, uid: string): PodIdentity | undefined {
  for (const p of model.list('Pod')) {
    if (p.metadata.uid !== uid || p.spec?.nodeName !== node) continue;
    const phase = p.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return undefined;
    const ns = p.metadata.namespace ?? 'default';
    return { pod: `${ns}/${p.metadata.name}`, spiffeId: workloadSpiffeId(trustDomain, ns, p.spec?.serviceAccountName || 'default') };
  }
  return undefined;
}
