// ts-proto's JSON for Any and Duration does not follow the proto3 JSON mapping
// (Any as {"@type", ...fields}, Duration as "1.5s"). These replace the generated
// fromJSON/toJSON so that every generated message that embeds them round-trips.
import { Any } from '../gen/google/protobuf/any.js';
import { Duration } from '../gen/google/protobuf/duration.js';
import { messageFns, typeNameOf, typeUrlOf } from './registry.js';

/** Types whose proto3 JSON form is not an object, so inside Any they sit under "value". */
export const SPECIAL_JSON_TYPES = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

export function parseDuration(text: string): Duration | undefined {
  const m = DURATION_RE.exec(text);
  if (!m) return undefined;
  const sign = m[1] ? -1 : 1;
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: String(sign * Number(m[2]) || 0), nanos: sign * nanos || 0 };
}

export function formatDuration(d: Duration): string {
  const seconds = BigInt(d.seconds);
  const negative = seconds < 0n || d.nanos < 0;
  const abs = (seconds < 0n ? -seconds : seconds).toString();
  const nanos = Math.abs(d.nanos);
  if (nanos === 0) return `${negative ? '-' : ''}${abs}s`;
  const frac = String(nanos).padStart(9, '0').replace(/(000)+$/, '');
  return `${negative ? '-' : ''}${abs}.${frac}s`;
}

let installed = false;

export function installWellKnownJson(): void {
  if (installed) return;
  installed = true;

  Duration.fromJSON = (object: unknown): Duration => {
    if (typeof object === 'string') {
      const d = parseDuration(object);
      if (d) return d;
    }
    throw new Error(`invalid google.protobuf.Duration ${JSON.stringify(object)}: want a string like "1.5s"`);
  };
  Duration.toJSON = (message: Duration): unknown => formatDuration(message);

  Any.fromJSON = (object: unknown): Any => {
    const o = object as Record<string, unknown>;
    const url = o?.['@type'];
    if (typeof url !== 'string') throw new Error('google.protobuf.Any needs "@type"');
    const typeName = typeNameOf(url);
    const fns = messageFns(typeName);
    if (!fns) throw new Error(`unknown @type "${url}"`);
    let inner: unknown;
    if (typeName === 'google.protobuf.Struct') inner = { fields: o.value };
    else if (typeName.endsWith('Value') && typeName !== 'google.protobuf.Value' && typeName !== 'google.protobuf.ListValue')
      inner = { value: o.value };
    else if (SPECIAL_JSON_TYPES.has(typeName)) inner = o.value;
    else {
      const { ['@type']: _drop, ...rest } = o;
      inner = rest;
    }
    return { typeUrl: typeUrlOf(typeName), value: Buffer.from(fns.encode(fns.fromJSON(inner)).finish()) };
  };
  Any.toJSON = (message: Any): unknown => {
    const typeName = typeNameOf(message.typeUrl);
    const fns = messageFns(typeName);
    if (!fns) return { '@type': message.typeUrl, value: Buffer.from(message.value).toString('base64') };
    const json = fns.toJSON(fns.decode(message.value));
    if (SPECIAL_JSON_TYPES.has(typeName)) return { '@type': message.typeUrl, value: json };
    return { '@type': message.typeUrl, ...(json as object) };
  };
}

installWellKnownJson();
