// SO_PEERCRED through the small addon native/peer_cred.c: Node has no getsockopt.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

const ADDON = fileURLToPath(new URL('../../native/build/Release/sluice_peercred.node', import.meta.url));

let loaded: { peerCred(fd: number): PeerCred } | undefined;

/** The process at the other end of the connected unix socket `fd`, as the kernel recorded it at connect(). */
export function peerCred(fd: number): PeerCred {
  if (!loaded) {
    if (!existsSync(ADDON)) throw new Error(`the peer-credentials addon is not built (${ADDON}); run scripts/setup.sh`);
    loaded = createRequire(import.meta.url)(ADDON) as { peerCred(fd: number): PeerCred };
  }
  return loaded.peerCred(fd);
}
