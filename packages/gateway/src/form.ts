/**
 * A multipart form (`multipart/form-data`), as a transcription's or an image edit's request is
 * sent: its text fields, read for routing, policy and metering, and the size and number of its
 * files. The body goes upstream as it came, but for its `model` where a route names another
 * (withField).
 */

export interface Form {
  /** The text fields (the file's part excluded), as strings; `stream` as a boolean. */
  fields: Record<string, unknown>;
  /** The bytes of the file parts. */
  fileBytes: number;
  /** How many file parts it has (an edit's images, and its mask). */
  files: number;
}

/** The fields a form gives as numbers, read as numbers, as a JSON body would give them. */
const NUMBERS = new Set(['n', 'partial_images']);

/** The boundary a content-type names, or null for one that is not a multipart form. */
function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^multipart\/form-data\s*;/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2] ?? null) : null;
}

interface Part {
  name: string;
  file: boolean;
  /** Where its head starts, and its body starts and ends, in the body's bytes. */
  start: number;
  bodyStart: number;
  end: number;
}

function partsOf(raw: Buffer, boundary: string): Part[] | null {
  const sep = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = raw.indexOf(sep);
  if (at < 0) return null;
  for (;;) {
    const after = at + sep.length;
    // `--` after a boundary closes the form.
    if (raw[after] === 0x2d && raw[after + 1] === 0x2d) return parts;
    const start = after + 2;
    const headEnd = raw.indexOf('\r\n\r\n', start);
    const next = raw.indexOf(sep, start);
    if (headEnd < 0 || next < 0 || headEnd > next) return null;
    const head = raw.subarray(start, headEnd).toString('utf8');
    const name = /\bname="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined) return null;
    parts.push({ name, file: /\bfilename="/i.test(head), start, bodyStart: headEnd + 4, end: next - 2 });
    at = next;
  }
}

/** A multipart form's fields, or null for a body that is not one. */
export function readForm(raw: Buffer, contentType: string | undefined): Form | null {
  const boundary = boundaryOf(contentType);
  if (!boundary) return null;
  const parts = partsOf(raw, boundary);
  if (!parts) return null;
  const fields: Record<string, unknown> = {};
  let fileBytes = 0;
  let files = 0;
  for (const p of parts) {
    if (p.file) {
      fileBytes += Math.max(0, p.end - p.bodyStart);
      files++;
    } else {
      const v = raw.subarray(p.bodyStart, Math.max(p.bodyStart, p.end)).toString('utf8');
      fields[p.name] =
        p.name === 'stream' ? v === 'true' : NUMBERS.has(p.name) && /^\d{1,9}$/.test(v) ? Number(v) : v;
    }
  }
  return { fields, fileBytes, files };
}

/** The form with its text field `name` set to `value` (the rest as it came); null when it has no
 * such field. */
export function withField(
  raw: Buffer,
  contentType: string | undefined,
  name: string,
  value: string,
): Buffer | null {
  const boundary = boundaryOf(contentType);
  const part = boundary ? partsOf(raw, boundary)?.find((p) => p.name === name && !p.file) : undefined;
  if (!part) return null;
  return Buffer.concat([raw.subarray(0, part.bodyStart), Buffer.from(value), raw.subarray(part.end)]);
}

/** The form with a text field `name` of `value` added before its files (a field it already has is
 * set instead). */
export function withAddedField(
  raw: Buffer,
  contentType: string | undefined,
  name: string,
  value: string,
): Buffer {
  const set = withField(raw, contentType, name, value);
  if (set) return set;
  const boundary = boundaryOf(contentType)!;
  const part = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  const at = raw.indexOf(`--${boundary}`);
  return Buffer.concat([raw.subarray(0, at), part, raw.subarray(at)]);
}

/** The usage a verbose transcript or translation (whisper-1's `verbose_json`) bills: the seconds of
 * audio its `duration` gives, to the nearest second (as OpenAI bills whisper-1, and as its
 * transcription usage gives them); null without one. */
export function durationUsage(json: Record<string, unknown>): Record<string, unknown> | null {
  const d = json['duration'];
  return typeof d === 'number' && Number.isFinite(d) && d >= 0 && d < 2 ** 31
    ? { type: 'duration', seconds: Math.round(d) }
    : null;
}

/** The formats a whisper-1 transcript or translation may be asked in that give no duration: the
 * text, and subtitles. */
export const PLAIN_TRANSCRIPTS = new Set(['text', 'srt', 'vtt']);

/** A time in a subtitle cue: `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT). */
function cueTime(seconds: number, mark: ',' | '.'): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  return `${pad(h)}:${pad(m)}:${pad(s)}${mark}${pad(ms % 1000, 3)}`;
}

/**
 * A verbose transcript (whisper-1's `verbose_json`) in the format the client asked: `text`, the text
 * and a newline; `srt` and `vtt`, a cue for each of its segments (one for the whole, from 0 to its
 * duration, where it has none), as whisper-1 writes them.
 */
export function plainTranscript(json: Record<string, unknown>, format: string): string {
  const text = typeof json['text'] === 'string' ? json['text'] : '';
  if (format === 'text') return `${text}\n`;
  const given = Array.isArray(json['segments']) ? (json['segments'] as Record<string, unknown>[]) : [];
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const segments =
    given.length > 0
      ? given.map((g) => ({
          start: num(g['start']),
          end: num(g['end']),
          text: String(g['text'] ?? '').trim(),
        }))
      : [{ start: 0, end: num(json['duration']), text: text.trim() }];
  const mark = format === 'srt' ? ',' : '.';
  const cues = segments.map(
    (g, i) =>
      `${format === 'srt' ? `${i + 1}\n` : ''}${cueTime(g.start, mark)} --> ${cueTime(g.end, mark)}\n${g.text}\n`,
  );
  return `${format === 'vtt' ? 'WEBVTT\n\n' : ''}${cues.join('\n')}\n`;
}

/** The bytes of the file a form's fields came with (readForm), kept beside the fields. */
export const FILE_BYTES = new WeakMap<object, number>();
/** How many files a form's fields came with. */
export const FILE_COUNT = new WeakMap<object, number>();

/**
 * The most image tokens an image edit's input images may be billed, for its reservation: for each
 * file (each image, and the mask), what GPT-4o's vision bills the largest image at high detail
 * (1,445: 85 and 170 for each of eight 512-pixel tiles), and with `input_fidelity: high` the 6,240
 * more OpenAI bills gpt-image-1 for a portrait or landscape image at that fidelity.
 */
export function editImageTokensHeld(body: Record<string, unknown>): number {
  const each = 1_445 + (body['input_fidelity'] === 'high' ? 6_240 : 0);
  return each * (FILE_COUNT.get(body) ?? 0);
}

/**
 * The most audio tokens a transcription's file may be billed, for its reservation, from its size
 * alone (the gateway does not decode audio): as if it were speech at 32 kbps (4,000 bytes a
 * second), at 20 tokens a second, more than gpt-4o-transcribe bills for a second of speech. An
 * MP3 at 128 kbps is reserved about four times what it costs; the settlement corrects it.
 */
export function audioTokensHeld(fileBytes: number): number {
  return Math.ceil(fileBytes / 200);
}
