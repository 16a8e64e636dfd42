import type { Any } from '../gen/google/protobuf/any.js';
import { fromProtoJson, ProtoJsonError, toProtoJson } from './json.js';
import { messageFns, typeNameOf, typeUrlOf } from './registry.js';

export type { Any };

export function packAny(typeName: string, message: unknown): Any {
  const fns = messageFns(typeName);
  if (!fns) throw new Error(`unknown message type ${typeName}`);
  return { typeUrl: typeUrlOf(typeName), value: Buffer.from(fns.encode(message).finish()) };
}

export function unpackAny<T = unknown>(any: Any): { typeName: string; message: T } {
  const typeName = typeNameOf(any.typeUrl);
  const fns = messageFns(typeName);
  if (!fns) throw new Error(`unknown @type "${any.typeUrl}"`);
  return { typeName, message: fns.decode(any.value) as T };
}

/** A resource written as proto3 JSON with "@type", as users write it in YAML. */
export function anyFromJson(json: unknown, path = 'resource'): Any {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ProtoJsonError(path, 'want an object with "@type"');
  return fromProtoJson<Any>('google.protobuf.Any', json, path);
}

export function anyToJson(any: Any): Record<string, unknown> {
  return toProtoJson('google.protobuf.Any', any) as Record<string, unknown>;
}
