/** UTF-8 text appended into one growing buffer outside the JavaScript heap. */
export class TextBuffer {
  private buf: Buffer;
  private at = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** A buffer that starts with these bytes, not copied: the caller gives them up. */
  static adopt(bytes: Buffer): TextBuffer {
    const t = new TextBuffer(0);
    t.buf = bytes;
    t.at = bytes.length;
    return t;
  }

  append(text: string): void {
    // A UTF-16 code unit is at most 3 bytes of UTF-8.
    if (this.at + text.length * 3 > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + text.length * 3));
      this.buf.copy(bigger, 0, 0, this.at);
      this.buf = bigger;
    }
    this.at += this.buf.write(text, this.at, 'utf8');
  }

  /** The text so far (a view, not a copy). */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}
