// The CA's key material in a directory: the agent's own state dir, or a mounted
// kubernetes.io/tls Secret. Agents sharing a dir may start together, so a new
// root is published with link(2), which fails if the name exists: exactly one
// publisher wins and the others read its files.
import { constants } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { createJwtKeyPem, createRootPem, type RootPem } from './root.js';
import type { KeyType } from './types.js';

export const CA_CERT = 'ca.crt';
export const CA_KEY = 'ca.key';
export const TLS_CERT = 'tls.crt';
export const TLS_KEY = 'tls.key';
export const JWT_KEY = 'jwt.key';

export interface CaFiles {
  certPem: string;
  keyPem: string;
  /** Absent when the dir holds no jwt.key and can't be written (a read-only mount). */
  jwtKeyPem?: string;
}

export interface CaFilesOptions {
  dir: string;
  trustDomain: string;
  keyType: KeyType;
  now: Date;
  log?: Logger;
  /** How long a loser waits for the winner to finish publishing. */
  waitMs?: number;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Links `from` to `to` unless `to` exists; true if this call created it. */
async function linkExclusive(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Writes files into a private temp dir beside their final names (same filesystem, so link works). */
async function stage(dir: string, files: Record<string, { data: string; mode: number }>): Promise<string> {
  const tmp = await mkdtemp(join(dir, '.staging-'));
  for (const [name, { data, mode }] of Object.entries(files)) {
    // O_EXCL on a fresh name: the key is never readable by others, not even briefly.
    await writeFile(join(tmp, name), data, { mode, flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL });
  }
  return tmp;
}

function isReadOnly(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EROFS' || code === 'EACCES' || code === 'EPERM';
}

async function publishRoot(opts: CaFilesOptions): Promise<boolean> {
  const root: RootPem = await createRootPem(opts.trustDomain, opts.keyType, opts.now);
  const tmp = await stage(opts.dir, {
    [CA_CERT]: { data: root.certPem, mode: 0o644 },
    [JWT_KEY]: { data: root.jwtKeyPem, mode: 0o600 },
    [CA_KEY]: { data: root.keyPem, mode: 0o600 },
  });
  try {
    // ca.crt decides the race; ca.key goes last because readers take it as "published".
    if (!(await linkExclusive(join(tmp, CA_CERT), join(opts.dir, CA_CERT)))) return false;
    await linkExclusive(join(tmp, JWT_KEY), join(opts.dir, JWT_KEY));
    await linkExclusive(join(tmp, CA_KEY), join(opts.dir, CA_KEY));
    opts.log?.info({ dir: opts.dir, trustDomain: opts.trustDomain, keyType: opts.keyType }, 'created a new SPIFFE root CA');
    return true;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** jwt.key from the dir, created there if missing and the dir is writable. */
async function jwtKey(opts: CaFilesOptions): Promise<string | undefined> {
  const path = join(opts.dir, JWT_KEY);
  const existing = await readIfExists(path);
  if (existing !== undefined) return existing;
  try {
    const tmp = await stage(opts.dir, { [JWT_KEY]: { data: await createJwtKeyPem(), mode: 0o600 } });
    try {
      await linkExclusive(join(tmp, JWT_KEY), path);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    if (isReadOnly(err)) return undefined;
    throw err;
  }
  return readIfExists(path);
}

async function warnIfLoose(path: string, log?: Logger): Promise<void> {
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) log?.warn({ path, mode: (st.mode & 0o777).toString(8) }, 'CA key file is readable by group or others');
}

/** Reads the CA from `dir`, creating a new root there if the dir holds none. */
export async function loadOrCreateCaFiles(opts: CaFilesOptions): Promise<CaFiles> {
  const waitMs = opts.waitMs ?? 10_000;
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + waitMs;
  let created = false;
  for (;;) {
    // A mounted kubernetes.io/tls Secret names its files tls.*; it is read-only and wins over ca.*.
    const tlsCert = await readIfExists(join(opts.dir, TLS_CERT));
    const tlsKey = await readIfExists(join(opts.dir, TLS_KEY));
    if (tlsCert !== undefined && tlsKey !== undefined) {
      return { certPem: tlsCert, keyPem: tlsKey, jwtKeyPem: await jwtKey(opts) };
    }
    const key = await readIfExists(join(opts.dir, CA_KEY));
    const cert = await readIfExists(join(opts.dir, CA_CERT));
    if (key !== undefined) {
      if (cert === undefined) throw new Error(`${opts.dir} holds ${CA_KEY} but no ${CA_CERT}`);
      await warnIfLoose(join(opts.dir, CA_KEY), opts.log);
      return { certPem: cert, keyPem: key, jwtKeyPem: await jwtKey(opts) };
    }
    if (cert === undefined && !created) {
      // Losing the race is not an error: the next pass reads the winner's files.
      created = await publishRoot(opts);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${opts.dir} holds ${CA_CERT} but no ${CA_KEY} after ${waitMs} ms; remove the half-written CA or supply both`);
    }
    await sleep(25);
  }
}
