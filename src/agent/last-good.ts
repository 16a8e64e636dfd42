import type { ObjectTranslation } from '../translate/output.js';

/**
 * Per object, the last translation that was not rejected. A rejected object
 * keeps serving that, with its new issues reported; objects that left the
 * model are forgotten.
 */
export class LastGood {
  private good = new Map<string, ObjectTranslation>();

  apply(units: ObjectTranslation[]): ObjectTranslation[] {
    const next = new Map<string, ObjectTranslation>();
    const out = units.map((u) => {
      if (!u.rejected) {
        next.set(u.object, u);
        return u;
      }
      const prior = this.good.get(u.object);
      if (!prior) return { ...u, resources: [], redirects: [] };
      next.set(u.object, prior);
      return { ...prior, issues: u.issues, rejected: true };
    });
    this.good = next;
    return out;
  }

  /** apply() for one object whose translation changed (undefined: the object is gone). */
  applyOne(object: string, u: ObjectTranslation | undefined): ObjectTranslation | undefined {
    if (!u) {
      this.good.delete(object);
      return undefined;
    }
    if (!u.rejected) {
      this.good.set(object, u);
      return u;
    }
    const prior = this.good.get(object);
    if (!prior) return { ...u, resources: [], redirects: [] };
    return { ...prior, issues: u.issues, rejected: true };
  }

  /** Replaces an object's last good translation, e.g. with the one its node last accepted. */
  pin(unit: ObjectTranslation): void {
    this.good.set(unit.object, unit);
  }
}
