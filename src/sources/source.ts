import type { Model } from '../model/model.js';
import type { TranslationIssue } from '../translate/output.js';

export interface ModelUpdate {
  model: Model;
  /** Objects the source could not read, each named with its file and field. */
  issues: TranslationIssue[];
}

/** What the agent made of the model, for sources that can write status back. */
export interface StatusReport {
  model: Model;
  /** Every current issue, including the source's own. */
  issues: TranslationIssue[];
}

/** Where cluster state comes from: a directory of YAML, or the Kubernetes API. */
export interface ModelSource {
  start(onChange: (update: ModelUpdate) => void): Promise<void>;
  stop(): Promise<void>;
  /** Before the first model: what the source still waits for, said so an operator can act on it. */
  pending?(): string[];
  /** Called after each published version; the Kubernetes source turns it into status and Events. */
  report?(report: StatusReport): void;
}
