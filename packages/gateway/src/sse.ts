/**
 * Splits a server-sent event stream into whole events, so each can be forwarded the moment it is
 * complete (nothing is held back beyond an event boundary) and the few that carry usage inspected.
 */
export class SseSplitter {
  private buf = '';

  /** Whole events (each with its blank-line terminator) completed by this chunk. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const buf = this.buf;
    const out: string[] = [];
    let start = 0;
    // Each terminator is searched for again only once the last one found is behind: a stream with
    // no CRLF would otherwise be scanned to its end for one at every event.
    let lf = buf.indexOf('\n\n');
    let crlf = buf.indexOf('\r\n\r\n');
    while (lf >= 0 || crlf >= 0) {
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf + 2;
      out.push(buf.slice(start, end));
      start = end;
      if (lf >= 0 && lf < start) lf = buf.indexOf('\n\n', start);
      if (crlf >= 0 && crlf < start) crlf = buf.indexOf('\r\n\r\n', start);
    }
    if (start > 0) this.buf = this.buf.slice(start);
    return out;
  }

  /** Characters held back: the start of an event not yet complete. */
  get pending(): number {
    return this.buf.length;
  }

  /** What is left after the stream ended (an unterminated last event). */
  rest(): string {
    const r = this.buf;
    this.buf = '';
    return r;
  }
}

/** The event's data, its `data:` lines joined; null if it has none. It runs on every event that
 * passes, so it walks the lines by index rather than splitting them. */
export function eventData(ev: string): string | null {
  let data: string | null = null;
  let i = 0;
  while (i < ev.length) {
    let nl = ev.indexOf('\n', i);
    if (nl < 0) nl = ev.length;
    const end = nl > i && ev.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    if (ev.startsWith('data:', i)) {
      const v = ev.slice(i + 5 < end && ev.charCodeAt(i + 5) === 32 ? i + 6 : i + 5, end);
      data = data === null ? v : `${data}\n${v}`;
    }
    i = nl + 1;
  }
  return data;
}

/** The event's `event:` name, if it has one. */
export function eventName(ev: string): string | null {
  const i = ev.startsWith('event:') ? 0 : ev.indexOf('\nevent:');
  if (i < 0) return null;
  const from = i === 0 ? 6 : i + 7;
  const end = ev.indexOf('\n', from);
  return ev.slice(from, end < 0 ? undefined : end).trim();
}
