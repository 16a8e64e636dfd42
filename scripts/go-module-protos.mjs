// Generates TypeScript (ts-proto, grpc-js services) into src/gen/<name> from
// .proto files that ship in a Go module, read from the Go module cache setup
// uses (downloaded there when missing), so the protos are used at build time
// and never copied into the repo. Each output has its own stamp: unchanged
// protos and scripts skip the work, and gen-protos.mjs clearing src/gen makes
// it run again.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '../..');
const cache = process.env.SLUICE_CACHE ?? '/var/cache/sluice';
// The same GOPATH (hence module cache) as scripts/install-kube.sh.
const goEnv = { ...process.env, GOPATH: join(cache, 'go'), GOCACHE: join(cache, 'go-build'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };

function moduleDir(module, version, probe) {
  const dir = join(goEnv.GOPATH, 'pkg/mod', `${module}@${version}`);
  if (existsSync(join(dir, probe))) return dir;
  console.log(`go mod download ${module}@${version}`);
  const info = JSON.parse(execFileSync('go', ['mod', 'download', '-json', `${module}@${version}`], { env: goEnv, cwd: '/tmp', encoding: 'utf8' }));
  if (info.Error) throw new Error(`go mod download ${module}@${version}: ${info.Error}`);
  return info.Dir;
}

/**
 * name: the output directory under src/gen; protoRoot: the include root inside
 * the module; protos: paths under it; tsProtoOpts: extra ts-proto options;
 * descriptors: also write descriptors.pb (with imports) for runtime reflection;
 * caller: the calling script's import.meta.url, part of the stamp.
 */
export function genFromGoModule({ name, module, version, protoRoot, protos, tsProtoOpts = [], descriptors = false, caller }) {
  const tag = `gen-${name}-protos`;
  const inc = join(moduleDir(module, version, join(protoRoot, protos[0])), protoRoot);
  const tsOut = join(root, `build/gen-${name}-ts`);
  const jsOut = join(root, 'src/gen', name);
  const hash = createHash('sha256');
  for (const p of protos) hash.update(p).update(readFileSync(join(inc, p)));
  for (const script of [caller, import.meta.url]) hash.update(readFileSync(fileURLToPath(script)));
  const stamp = hash.digest('hex');
  const stampFile = join(jsOut, '.stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    console.log(`${tag}: up to date`);
    return;
  }
  rmSync(tsOut, { recursive: true, force: true });
  rmSync(jsOut, { recursive: true, force: true });
  mkdirSync(tsOut, { recursive: true });
  mkdirSync(jsOut, { recursive: true });
  const opts = ['esModuleInterop=true', 'importSuffix=.js', 'outputServices=grpc-js', 'env=node', 'forceLong=string', 'useOptionals=none', ...tsProtoOpts].join(',');
  execFileSync(
    'protoc',
    [
      `--plugin=protoc-gen-ts_proto=${join(root, 'node_modules/.bin/protoc-gen-ts_proto')}`,
      `--ts_proto_out=${tsOut}`,
      `--ts_proto_opt=${opts}`,
      ...(descriptors ? [`--descriptor_set_out=${join(jsOut, 'descriptors.pb')}`, '--include_imports'] : []),
      `-I${inc}`,
      '-I/usr/include',
      ...protos,
    ],
    { stdio: 'inherit' },
  );
  execFileSync(
    join(root, 'node_modules/.bin/tsc'),
    ['--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--declaration', '--skipLibCheck', '--outDir', jsOut, '--rootDir', tsOut, ...protos.map((p) => join(tsOut, p.replace(/\.proto$/, '.ts')))],
    { stdio: 'inherit' },
  );
  writeFileSync(join(jsOut, 'package.json'), '{"type":"module"}\n');
  writeFileSync(stampFile, stamp);
  console.log(`${tag}: wrote ${jsOut}`);
}
