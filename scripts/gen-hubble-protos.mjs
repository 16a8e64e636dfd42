#!/usr/bin/env node
// Generates TypeScript for Hubble's Observer API into src/gen/hubble
// (git-ignored) from the observer, flow and relay protos that ship in the Go
// module github.com/cilium/cilium, read from the Go module cache setup uses
// (downloaded there when missing). Runs after gen-protos.mjs, which clears
// src/gen when the Envoy protos change; this script's own stamp then re-gens.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULE = 'github.com/cilium/cilium';
// The same version scripts/install-hubble.sh builds the CLI from, so client and server speak one API.
const VERSION = 'v1.20.2';
const PROTOS = ['observer/observer.proto', 'flow/flow.proto', 'relay/relay.proto'];

const root = join(fileURLToPath(import.meta.url), '../..');
const cache = process.env.SLUICE_CACHE ?? '/var/cache/sluice';
// The same GOPATH (hence module cache) as scripts/install-kube.sh.
const goEnv = { ...process.env, GOPATH: join(cache, 'go'), GOCACHE: join(cache, 'go-build'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };
const tsOut = join(root, 'build/gen-hubble-ts');
const jsOut = join(root, 'src/gen/hubble');

function apiDir() {
  const dir = join(goEnv.GOPATH, 'pkg/mod', `${MODULE}@${VERSION}`);
  if (PROTOS.every((p) => existsSync(join(dir, 'api/v1', p)))) return join(dir, 'api/v1');
  console.log(`gen-hubble-protos: go mod download ${MODULE}@${VERSION}`);
  const info = JSON.parse(execFileSync('go', ['mod', 'download', '-json', `${MODULE}@${VERSION}`], { env: goEnv, cwd: '/tmp', encoding: 'utf8' }));
  if (info.Error) throw new Error(`go mod download ${MODULE}@${VERSION}: ${info.Error}`);
  return join(info.Dir, 'api/v1');
}

const api = apiDir();
const hash = createHash('sha256');
for (const p of PROTOS) hash.update(p).update(readFileSync(join(api, p)));
const stamp = hash.update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');
const stampFile = join(jsOut, '.stamp');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log('gen-hubble-protos: up to date');
  process.exit(0);
}

rmSync(tsOut, { recursive: true, force: true });
rmSync(jsOut, { recursive: true, force: true });
mkdirSync(tsOut, { recursive: true });
mkdirSync(jsOut, { recursive: true });
// useDate=false: flow times carry nanoseconds, which a Date would drop.
const tsProtoOpts = ['esModuleInterop=true', 'importSuffix=.js', 'outputServices=grpc-js', 'env=node', 'forceLong=string', 'useOptionals=none', 'useDate=false'].join(',');
execFileSync(
  'protoc',
  [
    `--plugin=protoc-gen-ts_proto=${join(root, 'node_modules/.bin/protoc-gen-ts_proto')}`,
    `--ts_proto_out=${tsOut}`,
    `--ts_proto_opt=${tsProtoOpts}`,
    // The descriptors too: `sluice observe -o json` prints protojson with proto field names, as hubble does.
    `--descriptor_set_out=${join(jsOut, 'descriptors.pb')}`,
    '--include_imports',
    `-I${api}`,
    '-I/usr/include',
    ...PROTOS,
  ],
  { stdio: 'inherit' },
);
execFileSync(
  join(root, 'node_modules/.bin/tsc'),
  ['--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--declaration', '--skipLibCheck', '--outDir', jsOut, '--rootDir', tsOut, ...PROTOS.map((p) => join(tsOut, p.replace(/\.proto$/, '.ts')))],
  { stdio: 'inherit' },
);
writeFileSync(join(jsOut, 'package.json'), '{"type":"module"}\n');
writeFileSync(stampFile, stamp);
console.log(`gen-hubble-protos: wrote ${jsOut}`);
