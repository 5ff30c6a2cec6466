/**
 * Items held while they are in use, each in a numbered slot that is reused once freed: the calls
 * under way, the requests being served.
 *
 * Not a Map or a Set: in V8, a long-lived Map or Set that gets an entry added and deleted on every
 * call keeps the deleted values reachable for the young-generation collector, so each call's
 * objects (and all they hold: the request, the response, the upstream's body) are copied into the
 * old generation and wait there for a full collection. Measured on Node 20 with 16 entries live:
 * 2.8 MB promoted a scavenge for a Set or a Map, 0.16 MB for these slots, as for no container.
 */
export class Slots<T extends object> {
  private readonly items: (T | undefined)[] = [];
  private readonly free: number[] = [];
  private count = 0;

  /** Holds `item`; returns its slot. */
  add(item: T): number {
    const slot = this.free.pop() ?? this.items.length;
    this.items[slot] = item;
    this.count++;
    return slot;
  }

  /** Lets go of `item`, if it is still the one in `slot` (removing twice is harmless, and cannot
   * free a slot that another item has taken since). */
  remove(slot: number, item: T): void {
    if (this.items[slot] !== item) return;
    this.items[slot] = undefined;
    this.free.push(slot);
    this.count--;
  }

  has(slot: number, item: T): boolean {
    return this.items[slot] === item;
  }

  get size(): number {
    return this.count;
  }

  /** The items held now (a copy: safe to hold across awaits). */
  values(): T[] {
    const out: T[] = [];
    for (const item of this.items) if (item !== undefined) out.push(item);
    return out;
  }
}
