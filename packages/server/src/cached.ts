/** A value read from elsewhere (the server, for a replica; the store), kept for `ttlMs`, with one
 * read in flight at a time. A value at hand is given without a promise. */
export class Cached<K, V> {
  private readonly map = new Map<K, { value: V; at: number }>();
  private readonly loading = new Map<K, Promise<V>>();
  /** Bumped by forget(): a read begun before it is not kept. */
  private generation = 0;
  private readonly max: number;
  private readonly keepLastOnError: boolean;

  constructor(
    private readonly load: (k: K) => Promise<V>,
    private readonly ttlMs: (v: V) => number,
    private readonly now: () => number,
    /** `keepLastOnError`: a read that fails gives the last value read, if any, rather than fail
     * (a replica whose server is out of reach). */
    opts: { max?: number; keepLastOnError?: boolean } = {},
  ) {
    this.max = opts.max ?? 10_000;
    this.keepLastOnError = opts.keepLastOnError ?? true;
  }

  get(k: K): V | Promise<V> {
    const hit = this.map.get(k);
    if (hit && this.now() - hit.at < this.ttlMs(hit.value)) return hit.value;
    let p = this.loading.get(k);
    if (!p) {
      const generation = this.generation;
      const done = (): void => {
        if (this.loading.get(k) === p) this.loading.delete(k);
      };
      p = this.load(k).then(
        (value) => {
          if (generation === this.generation) {
            if (this.map.size >= this.max) this.map.clear();
            this.map.set(k, { value, at: this.now() });
          }
          done();
          return value;
        },
        (err: unknown) => {
          done();
          // The server is unreachable: keep serving what was last read rather than fail every call.
          if (hit && this.keepLastOnError) return hit.value;
          throw err;
        },
      );
      this.loading.set(k, p);
    }
    return p;
  }

  /** The next get reads `k` anew; a read under way is not kept. */
  forget(k: K): void {
    this.generation++;
    this.map.delete(k);
    this.loading.delete(k);
  }
}
