import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib';
import { decodes, type Inflater, inflaterFor } from './content-coding.js';
import type { GatewayError } from './replies.js';

type Decode = (buf: Buffer, opts: ZlibOptions) => Promise<Buffer>;

/** What decodes a whole body, by the content coding it is in (content-coding.ts). */
const DECODERS: Record<Inflater, Decode> = {
  gunzip: promisify(gunzip),
  brotli: promisify(brotliDecompress),
  inflate: promisify(inflate),
  'inflate-raw': promisify(inflateRaw),
};

const tooLarge = (limit: number): GatewayError => ({
  status: 413,
  type: 'invalid_request_error',
  code: 'body_too_large',
  message: `The request body is larger than ${limit} bytes.`,
});

/**
 * The whole request body, decoded if the client compressed it (gzip, deflate or br, held to the
 * same limit once decoded); or the error to answer: a body past `limit` bytes (413), a coding the
 * gateway does not read (415, before the body is read), or one that does not decode (400).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | GatewayError> {
  const named = req.headers['content-encoding']?.trim().toLowerCase();
  const coding = named && named !== 'identity' ? named : undefined;
  if (coding && !decodes(coding)) {
    req.resume();
    return {
      status: 415,
      type: 'invalid_request_error',
      code: 'unsupported_content_encoding',
      message: `The request body's content-encoding ${JSON.stringify(coding.slice(0, 40))} is not one the gateway reads: send it uncompressed, or as gzip, deflate or br.`,
    };
  }
  const raw = await readRaw(req, limit);
  if (raw === null) return tooLarge(limit);
  if (!coding || raw.length === 0) return raw;
  try {
    return await DECODERS[inflaterFor(coding, raw[0])!](raw, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return tooLarge(limit);
    return {
      status: 400,
      type: 'invalid_request_error',
      code: 'invalid_content_encoding',
      message: `The request body does not decode as ${coding}, its content-encoding.`,
    };
  }
}

/** The whole request body, or null past `limit` bytes. Read by events: an async iterator over the
 * request costs several microseconds a call. */
function readRaw(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        resolve(null);
      } else chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
    // A client gone before the body ended sends no 'end': without this the call would hang.
    req.once('close', () => {
      if (!req.complete) reject(new Error('The client closed the connection before the body ended.'));
    });
  });
}
