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

  /** Replaces an object's last good translation, e.g. with the one its node last accepted. */
  pin(unit: ObjectTranslation): void {
    this.good.set(unit.object, unit);
  }
}
