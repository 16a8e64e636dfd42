// Strict proto3-JSON reading. ts-proto's fromJSON silently drops what it does
// not know; users' YAML deserves an error naming the field. normalizeJson walks
// the generated schema, rejects unknown fields and ill-typed values, maps
// snake_case to the JSON names ts-proto reads, and checks every Any's @type.
import './well-known.js';
import { enumValues, messageFns, messageSchema, typeNameOf, typeUrlOf, type FieldSchema } from './registry.js';
import { parseDuration, SPECIAL_JSON_TYPES } from './well-known.js';

export class ProtoJsonError extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'ProtoJsonError';
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const INT32_KINDS = new Set(['int32', 'sint32', 'sfixed32', 'uint32', 'fixed32']);
const INT64_KINDS = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function fail(path: string, detail: string): never {
  throw new ProtoJsonError(path, detail);
}

function normalizeScalar(kind: string, value: unknown, path: string): unknown {
  if (kind === 'string') {
    if (typeof value !== 'string') fail(path, `want a string, got ${JSON.stringify(value)}`);
    return value;
  }
  if (kind === 'bool') {
    if (typeof value !== 'boolean') fail(path, `want true or false, got ${JSON.stringify(value)}`);
    return value;
  }
  if (kind === 'bytes') {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*=*$/.test(value)) fail(path, 'want base64 bytes');
    return value;
  }
  if (kind === 'double' || kind === 'float') {
    if (typeof value === 'number') return value;
    if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return value;
    if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
    fail(path, `want a number, got ${JSON.stringify(value)}`);
  }
  const unsigned = kind.startsWith('u') || kind.startsWith('fixed');
  const text = typeof value === 'number' || typeof value === 'string' ? String(value) : undefined;
  if (text === undefined || !/^-?\d+$/.test(text)) fail(path, `want an integer, got ${JSON.stringify(value)}`);
  const n = BigInt(text);
  if (unsigned && n < 0n) fail(path, `want a non-negative integer, got ${text}`);
  if (INT32_KINDS.has(kind)) {
    const [lo, hi] = unsigned ? [0n, 4294967295n] : [-2147483648n, 2147483647n];
    if (n < lo || n > hi) fail(path, `${text} is out of range for ${kind}`);
    return Number(n);
  }
  if (INT64_KINDS.has(kind)) {
    const [lo, hi] = unsigned ? [0n, 18446744073709551615n] : [-9223372036854775808n, 9223372036854775807n];
    if (n < lo || n > hi) fail(path, `${text} is out of range for ${kind}`);
    return text;
  }
  fail(path, `unsupported scalar kind ${kind}`);
}

const WRAPPER_KINDS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

const fieldIndexes = new Map<string, Map<string, [string, FieldSchema]>>();

/** Field lookup by proto name and by JSON name, built once per message type. */
function fieldIndex(typeName: string, fields: Record<string, FieldSchema>): Map<string, [string, FieldSchema]> {
  let index = fieldIndexes.get(typeName);
  if (!index) {
    index = new Map();
    for (const [protoName, f] of Object.entries(fields)) {
      index.set(protoName, [protoName, f]);
      index.set(f.json, [protoName, f]);
    }
    fieldIndexes.set(typeName, index);
  }
  return index;
}

/** Normalizes the JSON of one message of type `typeName`; see the file comment. */
export function normalizeJson(typeName: string, value: unknown, path: string): unknown {
  switch (typeName) {
    case 'google.protobuf.Any':
      return normalizeAny(value, path);
    case 'google.protobuf.Duration':
      if (typeof value !== 'string' || !parseDuration(value)) fail(path, `want a duration like "1.5s", got ${JSON.stringify(value)}`);
      return value;
    case 'google.protobuf.Timestamp':
      if (typeof value !== 'string' || !TIMESTAMP_RE.test(value)) fail(path, `want an RFC 3339 timestamp, got ${JSON.stringify(value)}`);
      return value;
    case 'google.protobuf.FieldMask':
      if (typeof value !== 'string') fail(path, 'want a comma-separated field mask');
      return value;
    case 'google.protobuf.Struct':
      if (!isPlainObject(value)) fail(path, 'want an object');
      return value;
    case 'google.protobuf.ListValue':
      if (!Array.isArray(value)) fail(path, 'want a list');
      return value;
    case 'google.protobuf.Value':
      return value;
  }
  const wrapped = WRAPPER_KINDS[typeName];
  if (wrapped) return normalizeScalar(wrapped, value, path);

  const schema = messageSchema(typeName);
  if (!schema) fail(path, `no schema for message type ${typeName}`);
  if (!isPlainObject(value)) fail(path, `want an object for ${typeName}, got ${JSON.stringify(value)}`);
  const byName = fieldIndex(typeName, schema.fields);
  const out: Record<string, unknown> = {};
  const seen = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    const entry = byName.get(key);
    const fieldPath = `${path}.${key}`;
    if (!entry) fail(fieldPath, `unknown field "${key}" in ${typeName}`);
    const [protoName, field] = entry;
    const dup = seen.get(protoName);
    if (dup !== undefined) fail(fieldPath, `field "${protoName}" is set twice (as "${dup}" and "${key}")`);
    seen.set(protoName, key);
    if (v === null && field.type !== 'google.protobuf.Value') continue;
    out[field.json] = normalizeField(field, v, fieldPath);
  }
  return out;
}

function normalizeField(field: FieldSchema, value: unknown, path: string): unknown {
  const entrySchema = field.kind === 'message' && field.type ? messageSchema(field.type) : undefined;
  if (entrySchema?.mapEntry) {
    if (!isPlainObject(value)) fail(path, 'want an object (a map)');
    const valueField = entrySchema.fields['value'];
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = normalizeSingle(valueField, v, `${path}.${k}`);
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) fail(path, `want a list, got ${JSON.stringify(value)}`);
    return value.map((v, i) => normalizeSingle(field, v, `${path}[${i}]`));
  }
  return normalizeSingle(field, value, path);
}

function normalizeSingle(field: FieldSchema, value: unknown, path: string): unknown {
  if (field.kind === 'message') return normalizeJson(field.type!, value, path);
  if (field.kind === 'enum') {
    const names = enumValues(field.type!) ?? [];
    if (typeof value === 'string') {
      if (!names.includes(value)) fail(path, `unknown ${field.type} value "${value}" (one of ${names.join(', ')})`);
      return value;
    }
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    fail(path, `want one of ${names.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return normalizeScalar(field.kind, value, path);
}

function normalizeAny(value: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) fail(path, 'want an object with "@type"');
  const url = value['@type'];
  if (typeof url !== 'string' || url === '') fail(`${path}.@type`, 'missing "@type"');
  const typeName = typeNameOf(url);
  if (!messageFns(typeName)) fail(`${path}.@type`, `unknown @type "${url}"`);
  if (SPECIAL_JSON_TYPES.has(typeName)) {
    const extra = Object.keys(value).filter((k) => k !== '@type' && k !== 'value');
    if (extra.length) fail(`${path}.${extra[0]}`, `unknown field "${extra[0]}" in ${typeName}`);
    return { '@type': typeUrlOf(typeName), value: normalizeJson(typeName, value.value, `${path}.value`) };
  }
  const { ['@type']: _t, ...rest } = value;
  return { '@type': typeUrlOf(typeName), ...(normalizeJson(typeName, rest, path) as object) };
}

/** Parses strict proto3 JSON into a ts-proto message of `typeName`. */
export function fromProtoJson<T = unknown>(typeName: string, json: unknown, path = typeName): T {
  const fns = messageFns(typeName);
  if (!fns) fail(path, `unknown message type ${typeName}`);
  const normalized = normalizeJson(typeName, json, path);
  try {
    return fns.fromJSON(normalized) as T;
  } catch (e) {
    fail(path, (e as Error).message);
  }
}

export function toProtoJson(typeName: string, message: unknown): unknown {
  const fns = messageFns(typeName);
  if (!fns) throw new Error(`unknown message type ${typeName}`);
  return fns.toJSON(message);
}
