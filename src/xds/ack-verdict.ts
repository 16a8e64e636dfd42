// Whether a node holds a snapshot version, decided from where each of its ADS
// streams stands, type by type. Pure, so the rules can be tested alone.
import type { NackInfo } from './snapshot-cache.js';

/** Where one subscribed type of one stream stands. */
export interface TypeAck {
  /** The newest snapshot version the newest response of this type carries this type's content of. */
  readonly currentThrough: number;
  /** The newest snapshot version whose content of this type the client has ACKed. */
  readonly ackedThrough: number;
  /** The newest response was rejected. */
  readonly nack: NackInfo | undefined;
}

export type Verdict = { readonly kind: 'accepted' } | { readonly kind: 'rejected'; readonly nack: NackInfo } | { readonly kind: 'pending' };

const ACCEPTED: Verdict = { kind: 'accepted' };
const PENDING: Verdict = { kind: 'pending' };

/**
 * A stream accepts `version` once it has ACKed that version's content of every
 * type it subscribed to, and subscribed to every `required` type: a stream that
 * never asked for listeners has accepted none. It rejects the version once a
 * type's newest response, carrying that version's content, was NACKed.
 */
export function streamVerdict(types: ReadonlyMap<string, TypeAck>, version: number, required: readonly string[]): Verdict {
  let pending = required.some((t) => !types.has(t));
  for (const st of types.values()) {
    if (st.ackedThrough >= version) continue;
    if (st.nack && st.currentThrough >= version) return { kind: 'rejected', nack: st.nack };
    pending = true;
  }
  return pending ? PENDING : ACCEPTED;
}

/**
 * A node accepts a version as soon as one of its streams does, and rejects it
 * only when every stream has: a second client with the node's id, or an old
 * Envoy draining beside a new one, cannot overrule the Envoy that accepted it.
 */
export function nodeVerdict(streams: readonly Verdict[]): Verdict {
  if (streams.some((v) => v.kind === 'accepted')) return ACCEPTED;
  const rejected = streams.filter((v) => v.kind === 'rejected');
  if (rejected.length > 0 && rejected.length === streams.length) return rejected[0];
  return PENDING;
}

/**
 * nodeVerdict over a changing set of streams, kept up to date per stream, so a
 * node with many streams pays for one stream's change, not for all of them.
 */
export class VerdictTally<K> {
  private readonly byStream = new Map<K, Verdict>();
  private accepted = 0;
  private rejected = 0;

  set(stream: K, v: Verdict): void {
    this.delete(stream);
    this.byStream.set(stream, v);
    if (v.kind === 'accepted') this.accepted++;
    else if (v.kind === 'rejected') this.rejected++;
  }

  delete(stream: K): void {
    const old = this.byStream.get(stream);
    if (!old) return;
    this.byStream.delete(stream);
    if (old.kind === 'accepted') this.accepted--;
    else if (old.kind === 'rejected') this.rejected--;
  }

  clear(): void {
    this.byStream.clear();
    this.accepted = this.rejected = 0;
  }

  verdict(): Verdict {
    if (this.accepted > 0) return ACCEPTED;
    if (this.rejected === 0 || this.rejected < this.byStream.size) return PENDING;
    for (const v of this.byStream.values()) if (v.kind === 'rejected') return v;
    return PENDING;
  }
}
