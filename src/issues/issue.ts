// Problems with objects, shared by every room that finds them (sources, translators,
// reconcilers) and every one that reports them (logs, status, Events).
import type { Origin } from '../model/model.js';

/** A problem with one object, pointing at the field responsible. */
export interface TranslationIssue {
  /** "Kind ns/name". */
  object: string;
  origin?: Origin;
  /** Path into the object, e.g. spec.resources[1].filter_chains[0]. */
  field: string;
  message: string;
  /** Why, as one CamelCase word for Kubernetes Events; absent means the object is invalid as written. */
  reason?: 'EnvoyRejected';
}

/** Formats an issue for logs and CLI output: file, object, field, message. */
export function formatIssue(i: TranslationIssue): string {
  const where = i.origin?.file ? `${i.origin.file}${i.origin.index !== undefined ? `[${i.origin.index}]` : ''}: ` : '';
  return `${where}${i.object}: ${i.field}: ${i.message}`;
}
