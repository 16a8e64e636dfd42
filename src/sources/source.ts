import type { Model } from '../model/model.js';
import type { TranslationIssue } from '../translate/output.js';

export interface ModelUpdate {
  model: Model;
  /** Objects the source could not read, each named with its file and field. */
  issues: TranslationIssue[];
}

/** Where cluster state comes from: a directory of YAML today, the Kubernetes API later. */
export interface ModelSource {
  start(onChange: (update: ModelUpdate) => void): Promise<void>;
  stop(): Promise<void>;
}
