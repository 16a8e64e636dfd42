// A source that can only list everything (a full re-read, an informer's
// cache) still hands on a model derived from the last by what changed: the
// objects are compared by identity, so the model, the translations and the
// indexes downstream see only the changed objects.
import { Model, type ModelEdit, type Origin } from '../model/model.js';
import { objectKey, type ModelObject } from '../model/objects.js';

export interface Placed {
  object: ModelObject;
  origin?: Origin;
}

const idOf = (o: ModelObject) => `${o.kind}/${objectKey(o)}`;

export class ModelDeriver {
  private model: Model | undefined;
  private current = new Map<string, Placed>();

  /** The next model, given every object there is now (each "Kind/ns/name" once). */
  next(objects: readonly Placed[]): Model {
    const next = new Map<string, Placed>();
    for (const c of objects) next.set(idOf(c.object), c);
    const prev = this.current;
    this.current = next;
    if (!this.model) return (this.model = Model.from(objects));
    const edits: ModelEdit[] = [];
    for (const [id, c] of next) {
      const before = prev.get(id);
      if (before?.object !== c.object || before.origin?.file !== c.origin?.file || before.origin?.index !== c.origin?.index) edits.push(c);
    }
    for (const [id, c] of prev) if (!next.has(id)) edits.push({ removed: { kind: c.object.kind, key: objectKey(c.object) } });
    return (this.model = this.model.withEdits(edits));
  }

  /** Edits known without a full listing (a source that knows what changed); keeps the listing in step. */
  apply(edits: { gone: Iterable<Placed>; came: Iterable<Placed> }, modelEdits: ModelEdit[]): Model {
    for (const c of edits.gone) this.current.delete(idOf(c.object));
    for (const c of edits.came) this.current.set(idOf(c.object), c);
    return (this.model = this.model!.withEdits(modelEdits));
  }
}
