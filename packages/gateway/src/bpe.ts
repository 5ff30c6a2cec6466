/**
 * A byte-pair-encoding token counter that keeps its ranks in a few flat arrays: the token bytes
 * back to back in one buffer and an open-addressing hash table over them. The same o200k ranks
 * held as JS strings and Maps cost about 60 MB of heap; here they take about 6 MB. It counts
 * tokens, it does not return them: counting is all the gateway needs (reservations, rate limits,
 * cut-off streams).
 */
export class BpeCounter {
  private constructor(
    /** Every token's bytes, back to back, in rank order. */
    private readonly bytes: Uint8Array,
    /** Where token r starts in `bytes`; offsets[r + 1] is where it ends. */
    private readonly offsets: Uint32Array,
    /** Slot -> rank + 1 (0 = empty), probed linearly from the FNV-1a hash of the bytes. */
    private readonly table: Int32Array,
    private readonly split: RegExp,
  ) {}

  /** Reads a `.tiktoken` file (one `base64 rank` pair a line) and the encoding's split pattern.
   * It is parsed as bytes, with no string a line, so loading leaves little garbage behind. */
  static fromTiktoken(file: Uint8Array, split: RegExp): BpeCounter {
    // Pass 1: the largest rank and an upper bound on the decoded size.
    let maxRank = -1;
    let encoded = 0;
    forEachLine(file, (b64Start, b64End, rank) => {
      if (rank > maxRank) maxRank = rank;
      encoded += b64End - b64Start;
    });
    const starts = new Uint32Array(maxRank + 1);
    const lengths = new Uint32Array(maxRank + 1);
    const decoded = new Uint8Array(Math.ceil((encoded * 3) / 4));
    let at = 0;
    forEachLine(file, (b64Start, b64End, rank) => {
      const n = decodeBase64(file, b64Start, b64End, decoded, at);
      starts[rank] = at;
      lengths[rank] = n;
      at += n;
    });
    // Lay the bytes out in rank order, so offsets[r + 1] ends token r.
    const bytes = new Uint8Array(at);
    const offsets = new Uint32Array(maxRank + 2);
    let o = 0;
    for (let r = 0; r <= maxRank; r++) {
      offsets[r] = o;
      bytes.set(decoded.subarray(starts[r]!, starts[r]! + lengths[r]!), o);
      o += lengths[r]!;
    }
    offsets[maxRank + 1] = o;
    let size = 1;
    while (size < (maxRank + 1) * 2.5) size <<= 1;
    const table = new Int32Array(size);
    for (let r = 0; r <= maxRank; r++) {
      if (offsets[r + 1] === offsets[r]) continue;
      let slot = hash(bytes, offsets[r]!, offsets[r + 1]!) & (size - 1);
      while (table[slot] !== 0) slot = (slot + 1) & (size - 1);
      table[slot] = r + 1;
    }
    return new BpeCounter(bytes, offsets, table, new RegExp(split.source, 'gu'));
  }

  /** The rank of bytes [start, end) of `buf` as one token, or -1. */
  private rank(buf: Uint8Array, start: number, end: number): number {
    const mask = this.table.length - 1;
    const len = end - start;
    let slot = hash(buf, start, end) & mask;
    for (;;) {
      const e = this.table[slot]!;
      if (e === 0) return -1;
      const r = e - 1;
      const o = this.offsets[r]!;
      if (this.offsets[r + 1]! - o === len) {
        let same = true;
        for (let i = 0; i < len; i++) {
          if (this.bytes[o + i] !== buf[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return r;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** The parts of the piece being merged, as a list over its byte positions: part k covers bytes
   * [k, next[k]), and pairRank[k] is the rank of part k joined with the part after it (-1: none).
   * Held between calls, so a piece allocates nothing. */
  private next = new Int32Array(256);
  private prev = new Int32Array(256);
  private pairRanks = new Int32Array(256);

  /** Tokens in one piece of the pre-split text: merge the adjacent pair of lowest rank (the first,
   * on a tie) until no pair is a token (the merge order that the encodings were trained with). */
  private countPiece(buf: Uint8Array, start: number, end: number): number {
    const n = end - start;
    if (n <= 1) return n;
    if (this.rank(buf, start, end) >= 0) return 1;
    if (this.next.length < n + 1) {
      this.next = new Int32Array(n + 1);
      this.prev = new Int32Array(n + 1);
      this.pairRanks = new Int32Array(n + 1);
    }
    const next = this.next;
    const prev = this.prev;
    const ranks = this.pairRanks;
    for (let k = 0; k < n; k++) {
      next[k] = k + 1;
      prev[k] = k - 1;
    }
    for (let k = 0; k < n; k++) ranks[k] = k + 2 <= n ? this.rank(buf, start + k, start + k + 2) : -1;
    let parts = n;
    for (;;) {
      let best = -1;
      let bestRank = 0x7fffffff;
      for (let k = 0; k < n; k = next[k]!) {
        const r = ranks[k]!;
        if (r >= 0 && r < bestRank) {
          bestRank = r;
          best = k;
        }
      }
      if (best < 0) break;
      // Part `best` takes in the part after it.
      const j = next[best]!;
      const after = next[j]!;
      next[best] = after;
      if (after < n) prev[after] = best;
      parts--;
      ranks[best] = after < n ? this.rank(buf, start + best, start + next[after]!) : -1;
      const p = prev[best]!;
      if (p >= 0) ranks[p] = this.rank(buf, start + p, start + after);
    }
    return parts;
  }

  private scratch = new Uint8Array(4096);

  /** The number of tokens `text` encodes to (special-token text counts as ordinary text). */
  count(text: string): number {
    let total = 0;
    const split = this.split;
    split.lastIndex = 0;
    // exec() on the one global pattern: matchAll() would copy the pattern on every call.
    for (let m = split.exec(text); m !== null; m = split.exec(text)) {
      const piece = m[0];
      if (piece.length === 0) {
        split.lastIndex++;
        continue;
      }
      // A long piece (a run of spaces or symbols) is merged in windows: the merge loop is
      // quadratic, and the count differs from the exact one by at most a token a window.
      for (let i = 0; i < piece.length; ) {
        let j = Math.min(piece.length, i + PIECE_WINDOW);
        // Never cut a surrogate pair in two.
        if (j < piece.length && (piece.charCodeAt(j - 1) & 0xfc00) === 0xd800) j++;
        const part = i === 0 && j === piece.length ? piece : piece.slice(i, j);
        i = j;
        total += this.countPiece(this.scratch, 0, this.utf8(part));
      }
    }
    return total;
  }

  /** Writes `part` as UTF-8 into the scratch buffer and returns its length: ASCII byte by byte
   * (most pieces are a short word), anything else through the encoder. */
  private utf8(part: string): number {
    if (this.scratch.length < part.length * 3) this.scratch = new Uint8Array(part.length * 3);
    const out = this.scratch;
    for (let i = 0; i < part.length; i++) {
      const c = part.charCodeAt(i);
      if (c >= 0x80) return encoder.encodeInto(part, out).written;
      out[i] = c;
    }
    return part.length;
  }
}

const PIECE_WINDOW = 1024;
const encoder = new TextEncoder();

function hash(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/** Calls `fn` with each `base64 rank` line's base64 span and its rank. */
function forEachLine(file: Uint8Array, fn: (b64Start: number, b64End: number, rank: number) => void): void {
  let i = 0;
  while (i < file.length) {
    const start = i;
    while (i < file.length && file[i] !== 0x20 && file[i] !== 0x0a) i++;
    if (i >= file.length || file[i] === 0x0a) {
      i++;
      continue;
    }
    const b64End = i++;
    let rank = 0;
    while (i < file.length && file[i]! >= 0x30 && file[i]! <= 0x39) rank = rank * 10 + file[i++]! - 0x30;
    while (i < file.length && file[i] !== 0x0a) i++;
    i++;
    fn(start, b64End, rank);
  }
}

const B64 = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++)
  B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

/** Decodes base64 bytes [start, end) of `src` into `out` at `at`; returns the bytes written. */
function decodeBase64(src: Uint8Array, start: number, end: number, out: Uint8Array, at: number): number {
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const v = B64[src[i]!]!;
    if (v < 0) continue; // '=' padding
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at + n++] = (acc >> bits) & 0xff;
    }
  }
  return n;
}
