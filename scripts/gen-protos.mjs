#!/usr/bin/env node
// Generates TypeScript for the Envoy data-plane API from the .proto files that
// ship inside @grpc/grpc-js-xds, then compiles them to src/gen (git-ignored).
//
// Steps:
//  1. collect the import closure of the roots below;
//  2. copy it to build/proto, dropping protoc-gen-validate options (the
//     validate.proto shipped beside the envoy-api is older than the envoy-api
//     and protoc rejects some of its uses; codegen does not need validation);
//  3. protoc + ts-proto -> build/gen-ts, plus a FileDescriptorSet;
//  4. write build/gen-ts/registry.ts (type name -> message functions) and
//     build/gen-ts/schema.json (field tables for strict proto3-JSON parsing);
//  5. tsc -> src/gen (.js + .d.ts), so test runs never transpile generated code.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const deps = join(root, 'node_modules/@grpc/grpc-js-xds/deps');
const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
const systemInclude = '/usr/include';
const buildDir = join(root, 'build');
const protoOut = join(buildDir, 'proto');
const tsOut = join(buildDir, 'gen-ts');
const jsOut = join(root, 'src/gen');

function walk(dir, pred) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...walk(p, pred));
    else if (pred(p)) out.push(p);
  }
  return out;
}

const envoyApi = join(deps, 'envoy-api');
const rootGlobs = [
  (r) => /^envoy\/config\/.*\/v3\/[^/]+\.proto$/.test(r),
  (r) => /^envoy\/extensions\/.*\/v3\/[^/]+\.proto$/.test(r),
  (r) => /^envoy\/service\/discovery\/v3\/[^/]+\.proto$/.test(r),
  (r) => /^envoy\/service\/status\/v3\/[^/]+\.proto$/.test(r),
  (r) => /^envoy\/service\/accesslog\/v3\/[^/]+\.proto$/.test(r),
  (r) => /^envoy\/admin\/v3\/[^/]+\.proto$/.test(r),
];
const roots = walk(envoyApi, (p) => p.endsWith('.proto'))
  .map((p) => relative(envoyApi, p))
  .filter((r) => rootGlobs.some((g) => g(r)));
roots.push('google/protobuf/descriptor.proto');

function locate(rel) {
  for (const d of [...includeDirs, systemInclude]) {
    const p = join(d, rel);
    if (existsSync(p)) return p;
  }
  return undefined;
}

// A root whose imports are not all shipped (a few extensions import
// opentelemetry or other trees the package leaves out) is skipped whole.
const closure = new Map();
const skipped = [];
for (const r of roots) {
  const mine = new Map();
  const queue = [r];
  let ok = true;
  while (queue.length && ok) {
    const rel = queue.pop();
    if (closure.has(rel) || mine.has(rel) || rel === 'validate/validate.proto') continue;
    const path = locate(rel);
    if (!path) { ok = false; break; }
    const src = readFileSync(path, 'utf8');
    mine.set(rel, src);
    for (const m of src.matchAll(/^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm)) queue.push(m[1]);
  }
  if (ok) for (const [k, v] of mine) closure.set(k, v);
  else skipped.push(r);
}
if (skipped.length) console.log(`gen-protos: skipped ${skipped.length} roots with unshipped imports: ${skipped.join(' ')}`);

// Removes `option (validate.x) = ...;` statements and `(validate.rules)...`
// entries inside field option lists, keeping the other options intact.
function stripValidate(src) {
  src = src.replace(/^\s*import\s+"validate\/validate\.proto"\s*;\s*$/m, '');
  const valueEnd = (s, i) => {
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '"' || c === "'") {
        const q = c;
        for (i++; i < s.length && s[i] !== q; i++) if (s[i] === '\\') i++;
      } else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0) return i;
        depth--;
      } else if ((c === ',' || c === ';') && depth === 0) return i;
    }
    return i;
  };
  for (;;) {
    const stmt = /option\s+\(validate\.[a-z_]+\)/.exec(src);
    if (!stmt) break;
    const end = valueEnd(src, stmt.index + stmt[0].length);
    src = src.slice(0, stmt.index) + src.slice(end + 1);
  }
  for (;;) {
    const idx = src.indexOf('(validate.');
    if (idx < 0) break;
    let end = valueEnd(src, idx);
    let start = idx;
    if (src[end] === ',') end++;
    else {
      const before = src.slice(0, idx).search(/,\s*$/);
      if (before >= 0) start = before;
    }
    src = src.slice(0, start) + src.slice(end);
  }
  return src.replace(/\[\s*\]/g, '');
}

const inputHash = createHash('sha256');
for (const [rel, src] of [...closure].sort()) inputHash.update(rel).update(src);
inputHash.update(readFileSync(fileURLToPath(import.meta.url)));
const stamp = inputHash.digest('hex');
const stampFile = join(jsOut, '.stamp');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log(`gen-protos: up to date (${closure.size} files)`);
  process.exit(0);
}

rmSync(protoOut, { recursive: true, force: true });
rmSync(tsOut, { recursive: true, force: true });
rmSync(jsOut, { recursive: true, force: true });
for (const [rel, src] of closure) {
  const dest = join(protoOut, rel);
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, rel.startsWith('google/protobuf/') ? src : stripValidate(src));
}
mkdirSync(tsOut, { recursive: true });

const files = [...closure.keys()].sort();
const descriptorSet = join(buildDir, 'descriptors.pb');
const plugin = join(root, 'node_modules/.bin/protoc-gen-ts_proto');
const tsProtoOpts = [
  'esModuleInterop=true',
  'importSuffix=.js',
  'outputServices=grpc-js',
  'env=node',
  'forceLong=string',
  'useOptionals=none',
  'outputPartialMethods=true',
].join(',');
console.log(`gen-protos: protoc on ${files.length} files`);
execFileSync(
  'protoc',
  [
    `--plugin=protoc-gen-ts_proto=${plugin}`,
    `--ts_proto_out=${tsOut}`,
    `--ts_proto_opt=${tsProtoOpts}`,
    `--descriptor_set_out=${descriptorSet}`,
    '--include_imports',
    `-I${protoOut}`,
    ...files,
  ],
  { stdio: 'inherit', maxBuffer: 1 << 28 },
);

// registry.ts needs the descriptor set decoded; compile descriptor.ts alone first.
const tscBin = join(root, 'node_modules/.bin/tsc');
const tscArgs = ['--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--declaration', '--skipLibCheck', '--outDir', jsOut, '--rootDir', tsOut];
execFileSync(tscBin, [...tscArgs, join(tsOut, 'google/protobuf/descriptor.ts')], { stdio: 'inherit' });
writeFileSync(join(jsOut, 'package.json'), '{"type":"module"}\n');
const { FileDescriptorSet } = await import(join(jsOut, 'google/protobuf/descriptor.js'));
const set = FileDescriptorSet.decode(readFileSync(descriptorSet));

// Field tables: for each message, its fields by proto name with json name, kind
// and type, so the codec can reject unknown fields and accept snake_case.
const TYPE_NAMES = {
  1: 'double', 2: 'float', 3: 'int64', 4: 'uint64', 5: 'int32', 6: 'fixed64', 7: 'fixed32', 8: 'bool', 9: 'string',
  11: 'message', 12: 'bytes', 13: 'uint32', 14: 'enum', 15: 'sfixed32', 16: 'sfixed64', 17: 'sint32', 18: 'sint64',
};
const schema = { messages: {}, enums: {} };
const registryImports = [];
const registryEntries = [];
set.file.forEach((file, fi) => {
  if (!files.includes(file.name)) return;
  const modPath = './' + file.name.replace(/\.proto$/, '.js');
  const alias = `m${fi}`;
  let used = false;
  const visitEnum = (e, prefix) => {
    schema.enums[`${prefix}${e.name}`] = e.value.map((v) => v.name);
  };
  const visit = (msg, prefix, tsPrefix) => {
    const full = `${prefix}${msg.name}`;
    const tsName = `${tsPrefix}${msg.name}`;
    const isMapEntry = msg.options?.mapEntry === true;
    const fields = {};
    for (const f of msg.field) {
      fields[f.name] = {
        json: f.jsonName,
        kind: TYPE_NAMES[f.type],
        type: f.typeName ? f.typeName.replace(/^\./, '') : undefined,
        repeated: f.label === 3,
      };
    }
    schema.messages[full] = { fields, mapEntry: isMapEntry || undefined };
    if (!isMapEntry) {
      registryEntries.push(`  [${JSON.stringify(full)}, ${alias}.${tsName}],`);
      used = true;
    }
    for (const n of msg.nestedType) visit(n, `${full}.`, `${tsName}_`);
    for (const e of msg.enumType) visitEnum(e, `${full}.`);
  };
  const pkg = file.package ? `${file.package}.` : '';
  for (const m of file.messageType) visit(m, pkg, '');
  for (const e of file.enumType) visitEnum(e, pkg);
  if (used) registryImports.push(`import * as ${alias} from ${JSON.stringify(modPath)};`);
});
writeFileSync(join(tsOut, 'schema.json'), JSON.stringify(schema));
writeFileSync(
  join(tsOut, 'registry.ts'),
  [
    '// Generated by scripts/gen-protos.mjs: fully-qualified message name -> ts-proto message functions.',
    ...registryImports,
    '',
    'export interface MessageFns {',
    '  encode(message: any, writer?: any): { finish(): Uint8Array };',
    '  decode(input: Uint8Array, length?: number): any;',
    '  fromJSON(object: any): any;',
    '  toJSON(message: any): unknown;',
    '  fromPartial(object: any): any;',
    '}',
    '',
    'export const messageTypes: ReadonlyMap<string, MessageFns> = new Map<string, MessageFns>([',
    ...registryEntries,
    ']);',
    '',
  ].join('\n'),
);

console.log('gen-protos: tsc');
const allTs = walk(tsOut, (p) => p.endsWith('.ts'));
writeFileSync(join(buildDir, 'gen-files.txt'), allTs.join('\n'));
execFileSync(tscBin, [...tscArgs, '--resolveJsonModule', ...allTs], { stdio: 'inherit', maxBuffer: 1 << 28 });
writeFileSync(join(jsOut, 'schema.json'), readFileSync(join(tsOut, 'schema.json')));
writeFileSync(stampFile, stamp);
console.log(`gen-protos: wrote ${allTs.length} modules to ${relative(root, jsOut)}`);
