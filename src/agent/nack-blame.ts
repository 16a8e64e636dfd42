// Which objects a NACK is about. Envoy's message is free text; an object is a
// culprit only if the message names one of its resources that went out in the
// rejected response, as a whole word, so a short name like "a" or "listener"
// is not found inside another one.
import { createHash } from 'node:crypto';
import type { ObjectTranslation } from '../translate/output.js';
import type { NackInfo } from '../xds/snapshot-cache.js';
import { toXdsResource } from '../resources/resource.js';

export function fingerprint(u: Pick<ObjectTranslation, 'resources'>): string {
  const h = createHash('sha256');
  for (const r of u.resources) h.update(r.typeUrl).update(r.value);
  return h.digest('base64url');
}

const NOTHING = fingerprint({ resources: [] });

/** Objects whose resources differ from those the node last accepted (a new object with no resources has not changed). */
export function changedSince(accepted: ReadonlyMap<string, ObjectTranslation>, units: Iterable<ObjectTranslation>): ObjectTranslation[] {
  return [...units].filter((u) => {
    const prior = accepted.get(u.object);
    // Units that did not change keep their identity from version to version.
    if (prior === u) return false;
    return fingerprint(u) !== (prior ? fingerprint(prior) : NOTHING);
  });
}

const NAME_CHAR = /[\w.\-/|:]/;

function mentions(text: string, name: string): boolean {
  for (let i = text.indexOf(name); i >= 0; i = text.indexOf(name, i + 1)) {
    const before = text[i - 1];
    const after = text[i + name.length];
    // Envoy ends a name with ':' in "listener(s) NAME: ..."; a name never ends a sentence with it inside.
    const ends = after === undefined || !NAME_CHAR.test(after) || (after === ':' && !NAME_CHAR.test(text[i + name.length + 1] ?? ' '));
    if ((before === undefined || !NAME_CHAR.test(before)) && ends) return true;
  }
  return false;
}

/** The objects among `candidates` whose resources the NACK names. */
export function namedCulprits(candidates: readonly ObjectTranslation[], nack: NackInfo): ObjectTranslation[] {
  const sent = new Set(nack.resourceNames);
  return candidates.filter((u) =>
    u.resources.some((r) => {
      if (r.typeUrl !== nack.typeUrl) return false;
      const { name } = toXdsResource(r);
      return sent.has(name) && mentions(nack.message, name);
    }),
  );
}
