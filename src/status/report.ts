import type { Model } from '../model/model.js';
import type { TranslationIssue } from '../issues/issue.js';

/** What the agent made of the model, for writers that put it back where people look (status, Events). */
export interface StatusReport {
  model: Model;
  /** Every current issue, including the sources' own. */
  issues: TranslationIssue[];
}

/** Writes reports out; the agent calls it after each published version. */
export interface StatusWriter {
  write(report: StatusReport): void;
  stop(): Promise<void>;
}
