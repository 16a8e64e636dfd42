// The order units are assembled in, which decides a name clash between two
// written resources of equal standing: configs, then clusterwide configs,
// routes, GAMMA Service units and raw resources last; within each, by where
// the object was written (file, then document), else by name. Both the full
// and the incremental assembly sort by it, so they settle clashes alike.
import type { Model, Origin } from '../model/model.js';
import type { Kind, ModelObject } from '../model/objects.js';

const RANK: Record<string, number> = { CiliumEnvoyConfig: 0, CiliumClusterwideEnvoyConfig: 1, HTTPRoute: 2, Service: 3 };
export const RAW_RANK = 4;

export function unitOrder(object: string, origin?: Origin): string {
  const kind = object.slice(0, object.indexOf(' '));
  const rank = RANK[kind] ?? RAW_RANK;
  return `${rank}\0${origin?.file ?? ''}\0${String(origin?.index ?? 0).padStart(9, '0')}\0${object}`;
}

/** unitOrder of a unit whose object (if the model has it) says where it was written. */
export function unitOrderIn(model: Model, object: string): string {
  const space = object.indexOf(' ');
  const found = model.get(object.slice(0, space) as Kind, object.slice(space + 1)) as ModelObject | undefined;
  return unitOrder(object, found && model.originOf(found));
}
