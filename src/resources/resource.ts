// An Envoy resource as xDS serves it: its type, the name clients subscribe by,
// and a content hash. Sources, translators and the xDS server all speak it.
import { createHash } from 'node:crypto';
import type { Any } from '../proto/any.js';
import { unpackAny } from '../proto/any.js';
import { isServedType, resourceNameOf, type XdsTypeUrl } from './types.js';

export interface XdsResource {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  readonly any: Any;
  /** Content hash: equal bytes, equal version, so unchanged resources are never resent. */
  readonly version: string;
}

export class ResourceError extends Error {}

export function contentVersion(any: Any): string {
  return createHash('sha256').update(any.value).digest('base64url').slice(0, 16);
}

// Translations are memoized per object, so the same Any objects come back on
// every publish; decoding and hashing them once is enough.
const described = new WeakMap<Any, XdsResource>();

export function toXdsResource(any: Any): XdsResource {
  const known = described.get(any);
  if (known) return known;
  const r = describeResource(any);
  described.set(any, r);
  return r;
}

function describeResource(any: Any): XdsResource {
  if (!isServedType(any.typeUrl)) throw new ResourceError(`type ${any.typeUrl} is not served over xDS`);
  const { message } = unpackAny<{ name?: string; clusterName?: string }>(any);
  const name = resourceNameOf(any.typeUrl, message);
  if (!name) throw new ResourceError(`a ${any.typeUrl} without a name`);
  return { typeUrl: any.typeUrl, name, any, version: contentVersion(any) };
}
