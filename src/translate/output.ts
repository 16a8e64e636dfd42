import type { Any } from '../proto/any.js';
import type { TranslationIssue } from '../issues/issue.js';

/** Service traffic the datapath should steer into a node-local Envoy listener. */
export interface ServiceRedirect {
  /** "ns/name" of the Service. */
  service: string;
  /** The Service port redirected; undefined means every port. */
  port?: number;
  listener: string;
  proxyPort: number;
}

/** What one source object translates to. Objects translate independently, so one bad object costs only itself. */
export interface ObjectTranslation {
  /** "Kind ns/name" of the source object. */
  object: string;
  resources: Any[];
  redirects: ServiceRedirect[];
  issues: TranslationIssue[];
  /**
   * How many of `resources`, from the first, the object's author wrote (a
   * config's own resources); the rest the agent generated from Services.
   * Absent: none. Generated resources win every name clash with written ones.
   */
  authored?: number;
  /**
   * Written by a cluster-scoped object (a CCEC, an administrator's): its written
   * resources win name and socket clashes with those of namespaced objects.
   */
  clusterScoped?: boolean;
  /**
   * Written listeners whose socket the agent chose (a proxy port): they keep it
   * against any listener that names that socket itself.
   */
  allocated?: string[];
  /**
   * The object itself is invalid (not merely pointing at something missing):
   * the agent keeps serving its last good translation instead.
   */
  rejected?: boolean;
}
