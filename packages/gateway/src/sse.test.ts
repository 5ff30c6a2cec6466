import { describe, expect, it } from 'vitest';
import { eventData, eventName, SseSplitter } from './sse.js';

describe('server-sent events', () => {
  it('reads the data lines of an event, LF or CRLF, one space after the colon dropped', () => {
    expect(eventData('data: {"a":1}\n\n')).toBe('{"a":1}');
    expect(eventData('data:{"a":1}\r\n\r\n')).toBe('{"a":1}');
    expect(eventData('event: x\ndata: a\ndata: b\n\n')).toBe('a\nb');
    expect(eventData('id: 1\r\ndata:  two spaces\r\n\r\n')).toBe(' two spaces');
    expect(eventData('data:\n\n')).toBe('');
    expect(eventData('data: x')).toBe('x');
    expect(eventData(': a comment\n\n')).toBeNull();
    expect(eventName('event: message_start\ndata: {}\n\n')).toBe('message_start');
    expect(eventName('id: 3\nevent: ping\n\n')).toBe('ping');
  });

  it('splits a stream into whole events however it is cut', () => {
    const text = 'data: one\n\ndata: two\r\n\r\nevent: e\ndata: three\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const s = new SseSplitter();
      const events = [...s.push(text.slice(0, cut)), ...s.push(text.slice(cut))];
      expect(events.map(eventData)).toEqual(['one', 'two', 'three']);
      expect(s.pending).toBe(0);
    }
  });
});
