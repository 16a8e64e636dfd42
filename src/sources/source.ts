import type { Model } from '../model/model.js';
import type { TranslationIssue } from '../issues/issue.js';

export interface ModelUpdate {
  model: Model;
  /** Objects the source could not read, each named with its file and field. */
  issues: TranslationIssue[];
  /** Milliseconds the source spent reading its inputs and building the model, for the agent's phase log. */
  timings?: { readMs: number; modelMs: number };
}

/** Where cluster state comes from: a directory of YAML, or the Kubernetes API. */
export interface ModelSource {
  start(onChange: (update: ModelUpdate) => void): Promise<void>;
  stop(): Promise<void>;
  /** Before the first model: what the source still waits for, said so an operator can act on it. */
  pending?(): string[];
}
