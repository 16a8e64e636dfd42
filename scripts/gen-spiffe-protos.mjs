#!/usr/bin/env node
// Generates TypeScript for the SPIFFE Workload API into src/gen/spiffe
// (git-ignored) from the workload.proto that ships in the Go module
// github.com/spiffe/go-spiffe/v2, read from the Go module cache setup uses
// (downloaded there when missing). Runs after gen-protos.mjs, which clears
// src/gen when the Envoy protos change; this script's own stamp then re-gens.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULE = 'github.com/spiffe/go-spiffe/v2';
const VERSION = 'v2.9.0';
const PROTO = 'proto/spiffe/workload/workload.proto';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = process.env.SLUICE_CACHE ?? '/var/cache/sluice';
// The same GOPATH (hence module cache) as scripts/install-kube.sh.
const goEnv = { ...process.env, GOPATH: join(cache, 'go'), GOCACHE: join(cache, 'go-build'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };
const tsOut = join(root, 'build/gen-spiffe-ts');
const jsOut = join(root, 'src/gen/spiffe');

function moduleDir() {
  const dir = join(goEnv.GOPATH, 'pkg/mod', `${MODULE}@${VERSION}`);
  if (existsSync(join(dir, PROTO))) return dir;
  console.log(`gen-spiffe-protos: go mod download ${MODULE}@${VERSION}`);
  const info = JSON.parse(execFileSync('go', ['mod', 'download', '-json', `${MODULE}@${VERSION}`], { env: goEnv, cwd: '/tmp', encoding: 'utf8' }));
  if (info.Error) throw new Error(`go mod download ${MODULE}@${VERSION}: ${info.Error}`);
  return info.Dir;
}

const src = join(moduleDir(), PROTO);
const stamp = createHash('sha256').update(readFileSync(src)).update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');
const stampFile = join(jsOut, '.stamp');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log('gen-spiffe-protos: up to date');
  process.exit(0);
}

rmSync(tsOut, { recursive: true, force: true });
rmSync(jsOut, { recursive: true, force: true });
mkdirSync(tsOut, { recursive: true });
const tsProtoOpts = ['esModuleInterop=true', 'importSuffix=.js', 'outputServices=grpc-js', 'env=node', 'forceLong=string', 'useOptionals=none'].join(',');
execFileSync(
  'protoc',
  [
    `--plugin=protoc-gen-ts_proto=${join(root, 'node_modules/.bin/protoc-gen-ts_proto')}`,
    `--ts_proto_out=${tsOut}`,
    `--ts_proto_opt=${tsProtoOpts}`,
    `-I${dirname(src)}`,
    '-I/usr/include',
    'workload.proto',
  ],
  { stdio: 'inherit' },
);
const tsc = join(root, 'node_modules/.bin/tsc');
execFileSync(
  tsc,
  ['--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--declaration', '--skipLibCheck', '--outDir', jsOut, '--rootDir', tsOut, join(tsOut, 'workload.ts')],
  { stdio: 'inherit' },
);
writeFileSync(join(jsOut, 'package.json'), '{"type":"module"}\n');
writeFileSync(stampFile, stamp);
console.log(`gen-spiffe-protos: wrote ${jsOut}`);
