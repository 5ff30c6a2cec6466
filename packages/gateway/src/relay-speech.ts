import type { ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { AttemptContext } from './meter.js';
import { type Accumulated, holdBack, passHeaders, type Recorder, streamFailure } from './relay.js';
import { eventData, SseSplitter } from './sse.js';
import { countTokens } from './tokenizer.js';
import type { Cancel, UpstreamResponse } from './upstream.js';

type Obj = Record<string, unknown>;

/**
 * Speech (POST /v1/audio/speech): the answer is the audio itself, passed on chunk by chunk as it
 * comes (or, asked with `stream_format: "sse"`, OpenAI's events of it), so the first sound is not
 * held back. What it costs:
 * - tts-1 and tts-1-hd (and others priced by the character) bill the characters of the input,
 *   which the gateway counts: exact, whatever the answer.
 * - gpt-4o-mini-tts bills tokens: the input's, and the audio's out. A streamed speech's last event
 *   gives them (`speech.audio.done`); a plain answer gives none, so they are estimated: the input's
 *   by the tokenizer, the audio's from its length (exact for `pcm` and `wav`, 24 kHz 16-bit, and
 *   from the input's length at about 15 characters a second for the compressed formats), and the
 *   call is marked estimated.
 */

/** Audio tokens a second of gpt-4o-mini-tts's speech: its price a second over its price a token
 * (LiteLLM's table: $0.00025 and $0.000012), 20.8, rounded up. */
export const SPEECH_TOKENS_PER_SECOND = 21;
/** Characters of input a second of speech at speed 1: about 150 words a minute. */
const CHARS_PER_SECOND = 15;
/** The slowest speech a budget reckons with, for the most a speech may cost. */
const SLOWEST_CHARS_PER_SECOND = 8;
/** `pcm` (and `wav` after its 44-byte header): 24,000 samples a second of 16 bits, one channel. */
const PCM_BYTES_PER_SECOND = 48_000;

/** The characters of a speech's input, as they are billed (code points, not UTF-16 units). */
export function speechCharacters(body: Obj): number {
  const input = body['input'];
  if (typeof input !== 'string') return 0;
  let n = 0;
  for (const _ of input) n++;
  return n;
}

function speedOf(body: Obj): number {
  const speed = Number(body['speed'] ?? 1);
  return Number.isFinite(speed) ? Math.min(4, Math.max(0.25, speed)) : 1;
}

/** The most audio tokens a speech may come to: its input read at the slowest, at its speed. */
export function speechTokensHeld(body: Obj): number {
  const seconds = speechCharacters(body) / (SLOWEST_CHARS_PER_SECOND * speedOf(body));
  return Math.ceil(seconds * SPEECH_TOKENS_PER_SECOND) + 100;
}

/** The audio tokens of a plain answer of `bytes` bytes, estimated (see above). */
export function speechTokensOf(body: Obj, bytes: number | null): number {
  const format = body['response_format'] ?? 'mp3';
  const seconds =
    bytes !== null && format === 'pcm'
      ? bytes / PCM_BYTES_PER_SECOND
      : bytes !== null && format === 'wav'
        ? Math.max(0, bytes - 44) / PCM_BYTES_PER_SECOND
        : speechCharacters(body) / (CHARS_PER_SECOND * speedOf(body));
  return Math.ceil(seconds * SPEECH_TOKENS_PER_SECOND);
}

/** The usage a `speech.audio.done` event gives, or null. */
function doneUsage(ev: string): Obj | null {
  if (!ev.includes('speech.audio.done')) return null;
  const data = eventData(ev);
  try {
    const json = JSON.parse(data ?? '') as Obj;
    const usage = json['usage'] as Obj | undefined;
    return json['type'] === 'speech.audio.done' && typeof usage === 'object' && usage !== null ? usage : null;
  } catch {
    return null;
  }
}

/** Relays a speech's 200 answer as it comes, and meters it (see above). */
export async function relaySpeech(
  record: Recorder,
  res: ServerResponse,
  up: UpstreamResponse,
  ctx: AttemptContext,
  body: Obj,
  a0: number,
  signal: Cancel,
  acc: Accumulated,
  /** The most bytes the upstream may send (gateway.max_response_bytes). */
  limit: number,
): Promise<void> {
  const type = String(up.headers['content-type'] ?? 'audio/mpeg');
  const sse = type.includes('event-stream');
  res.writeHead(200, {
    ...passHeaders(up.headers),
    ...acc.headers,
    'x-tally-call-id': ctx.id,
    'content-type': type,
    ...(sse ? { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } : {}),
  });
  const splitter = sse ? new SseSplitter() : null;
  const decoder = new StringDecoder('utf8');
  let bytes = 0;
  let usage: Obj | null = null;
  let ttft: number | null = null;
  let failed: string | null = null;
  try {
    await up.body.read((chunk) => {
      ttft ??= performance.now() - a0;
      bytes += chunk.length;
      if (splitter) for (const ev of splitter.push(decoder.write(chunk))) usage = doneUsage(ev) ?? usage;
      return res.write(chunk) || holdBack(res, up.body);
    }, limit);
    if (splitter) usage = doneUsage(splitter.rest() + decoder.end()) ?? usage;
  } catch (err) {
    failed = streamFailure(err, signal);
  }
  if (signal.aborted) failed = 'client_disconnected';
  // Audio cut off by the upstream is not passed on as a whole answer: the client sees its
  // connection cut, as the upstream's was.
  if (failed !== null && failed !== 'client_disconnected') res.destroy();
  else if (!res.destroyed) res.end();
  const given = usage as Obj | null;
  const tokens =
    given && typeof given['input_tokens'] === 'number' && typeof given['output_tokens'] === 'number'
      ? { input_tokens: given['input_tokens'], output_tokens: given['output_tokens'] }
      : null;
  const spoken = [body['input'], body['instructions']].filter((v) => typeof v === 'string').join('\n');
  record(
    ctx,
    {
      status: failed === null ? 'ok' : 'error',
      errorType: failed,
      usage: { characters: speechCharacters(body), ...tokens },
      // For a model billed by the token, when no usage came: used if the characters have no price.
      estimated: tokens
        ? null
        : { input: await countTokens(spoken), output: speechTokensOf(body, sse ? null : bytes) },
      modelServed: null,
      latencyMs: performance.now() - a0,
      ttftMs: ttft,
    },
    acc,
  );
}
