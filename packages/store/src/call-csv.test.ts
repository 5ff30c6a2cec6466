import { describe, expect, it } from 'vitest';
import { csvLineFields, csvLines, csvRecords } from './call-csv.js';

/** The rule csvRecords follows, byte by byte: a newline ends a record unless quotes are open. */
function reference(bytes: Buffer): { rows: number; end: number } {
  let rows = 0;
  let end = 0;
  let quoted = false;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 34) quoted = !quoted;
    else if (bytes[i] === 10 && !quoted) {
      rows++;
      end = i + 1;
    }
  }
  return { rows, end };
}

/** Seeded, so that a failure is the same failure every run. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

describe('call CSV', () => {
  it('finds the whole records of any text as the byte-by-byte rule does', () => {
    const next = random(7);
    const alphabet = ['a', 'é', ',', '"', '"', '\n', '""', '12'];
    for (let n = 0; n < 3000; n++) {
      let text = '';
      const len = Math.floor(next() * 40);
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(next() * alphabet.length)];
      const bytes = Buffer.from(text);
      expect(csvRecords(bytes), JSON.stringify(text)).toEqual(reference(bytes));
    }
  });

  it('splits records and fields as written: quoted text, doubled quotes, nulls, empty text', () => {
    const bytes = Buffer.from('"a,b","c""d",,1\n"x\ny","",2.5,\n"cut');
    expect(csvLines(bytes)).toEqual(['"a,b","c""d",,1', '"x\ny","",2.5,']);
    expect(csvLines(bytes).map(csvLineFields)).toEqual([
      ['a,b', 'c"d', null, '1'],
      ['x\ny', '', '2.5', null],
    ]);
    expect(() => csvLineFields('"open,1')).toThrow(/does not close/);
    expect(() => csvLineFields('"a"b,1')).toThrow(/after a quoted field/);
    expect(() => csvLineFields('a"b,1')).toThrow(/quote inside/);
  });
});
