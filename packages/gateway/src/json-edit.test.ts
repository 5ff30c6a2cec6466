import { describe, expect, it } from 'vitest';
import { checkTopLevel, editTopLevel } from './json-edit.js';
import { chatRecordings, SKIP_WITHOUT_RECORDINGS } from './testing/index.js';

const edit = (raw: string, edits: Record<string, unknown>) =>
  editTopLevel(
    Buffer.from(raw),
    new Map(Object.entries(edits).map(([k, v]) => [k, JSON.stringify(v)])),
  )?.toString();

describe('editTopLevel', () => {
  it('replaces a member in place and keeps every other byte, numbers included', () => {
    const raw = '{ "model" : "a/gpt-4o", "seed": 12345678901234567891, "temperature": 1.0 }\n';
    expect(edit(raw, { model: 'gpt-4o' })).toBe(
      '{ "model" : "gpt-4o", "seed": 12345678901234567891, "temperature": 1.0 }\n',
    );
  });

  it('adds what the object lacks at its end, and replaces objects whole', () => {
    expect(edit('{}', { model: 'm' })).toBe('{"model":"m"}');
    expect(edit('{"a":[1,{"b":"}"}]}', { model: 'm' })).toBe('{"a":[1,{"b":"}"}],"model":"m"}');
    expect(
      edit('{"stream_options":{"x":{"y":[]}},"z":null}', { stream_options: { include_usage: true } }),
    ).toBe('{"stream_options":{"include_usage":true},"z":null}');
  });

  it('reads strings with escaped quotes and backslashes, and escaped key names', () => {
    const raw = String.raw`{"content":"say \"model\": \\","mod\u0065l":"x","n":"\\\"}"}`;
    expect(JSON.parse(edit(raw, { model: 'y' })!)).toEqual({ ...JSON.parse(raw), model: 'y' });
  });

  it('replaces every member of a repeated name, as JSON.parse reads the last', () => {
    expect(edit('{"model":"a","model":"b"}', { model: 'c' })).toBe('{"model":"c","model":"c"}');
  });

  it('answers null for what is not one JSON object', () => {
    for (const raw of ['[]', '"x"', '{"a":1', '{"a":1}x', '{"a" 1}', '{a:1}', '{"a":}', '']) {
      expect(edit(raw, { model: 'm' }), raw).toBeUndefined();
    }
  });

  it.skipIf(SKIP_WITHOUT_RECORDINGS)('agrees with JSON.parse on every recorded request', () => {
    const requests = chatRecordings().map((r) => JSON.stringify(r.request, null, r.status % 2 ? 2 : 0));
    expect(requests.length).toBeGreaterThan(10);
    for (const raw of requests) {
      const edits = { model: 'other', stream_options: { include_usage: true } };
      expect(JSON.parse(edit(raw, edits)!)).toEqual({ ...JSON.parse(raw), ...edits });
    }
  });
});

describe('checkTopLevel', () => {
  it('finds the member that nests too deep, counting brackets outside strings only', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const check = (raw: string) => checkTopLevel(Buffer.from(raw), 4);
    expect(check(`{"a":1,"b":${deep(3)}}`)).toBeNull();
    expect(check(`{"a":1,"b":${deep(4)},"c":2}`)).toEqual({ code: 'nesting_too_deep', key: 'b' });
    expect(check(`{"s":"${'['.repeat(20)}","t":{"u":{"v":"}}}}{{{{"}}}`)).toBeNull();
  });

  it('finds a name given twice, however it is spelt, and only at the top level', () => {
    const check = (raw: string) => checkTopLevel(Buffer.from(raw), 512);
    expect(check('{"model":"a","messages":[],"model":"b"}')).toEqual({ code: 'duplicate_key', key: 'model' });
    expect(check(String.raw`{"model":"a","mod\u0065l":"b"}`)).toEqual({
      code: 'duplicate_key',
      key: 'model',
    });
    expect(check('{"model":"a","metadata":{"model":"b","model":"c"},"models":[]}')).toBeNull();
    // Past 32 names, a set takes over from the list.
    const many = Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`).join(',');
    expect(check(`{${many}}`)).toBeNull();
    expect(check(`{${many},"k7":0}`)).toEqual({ code: 'duplicate_key', key: 'k7' });
  });

  it('ends strings at the right quote, escapes on either side of where it stops reading byte by byte', () => {
    for (let n = 0; n < 40; n++) {
      const text = `${'a'.repeat(n)}\\"}],{[\\\\${'b'.repeat(n)}`;
      const raw = `{"s":"${text}","model":"x","t":["${text}",{"u":"${text}"}]}`;
      expect(checkTopLevel(Buffer.from(raw), 3), String(n)).toBeNull();
      expect(JSON.parse(edit(raw, { model: 'y' })!), String(n)).toEqual({ ...JSON.parse(raw), model: 'y' });
    }
  });
});
