import type { ServerResponse } from 'node:http';
import { mockForm } from './mock-batches.js';

/**
 * A transcription (POST /v1/audio/transcriptions), in OpenAI's documented format. gpt-4o-transcribe
 * answers with the text and its usage in tokens (the audio's: one for each 1,600 bytes of the file
 * here, and the prompt's text), streamed as `transcript.text.delta` events and a
 * `transcript.text.done` with the usage; whisper-1 gives its usage as the audio's seconds, and its
 * `verbose_json` the duration and segments too. A `response_format` of text answers with the text
 * alone.
 */
export function transcriptionAnswer(contentType: string, raw: Buffer, res: ServerResponse): void {
  const form = mockForm(contentType, raw);
  if (!form?.file || !form.fields['model']) {
    const text = JSON.stringify({
      error: { message: 'model and file are required', type: 'invalid_request_error' },
    });
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(text);
    return;
  }
  const { fields, file } = form;
  const text = 'Thank you for calling. How can I help you today?';
  if (fields['response_format'] === 'text') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`${text}\n`);
    return;
  }
  // whisper-1's verbose JSON: the duration (a second for each 16,000 bytes), its two sentences as
  // segments, and the usage in seconds.
  if (fields['response_format'] === 'verbose_json' && fields['model']!.startsWith('whisper')) {
    const duration = file.bytes.length / 16_000;
    const body = JSON.stringify({
      task: 'transcribe',
      language: 'english',
      duration,
      text,
      segments: [
        { id: 0, seek: 0, start: 0, end: duration / 2, text: ' Thank you for calling.' },
        { id: 1, seek: 0, start: duration / 2, end: duration, text: ' How can I help you today?' },
      ],
      usage: { type: 'duration', seconds: Math.ceil(duration) },
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const audio = Math.ceil(file.bytes.length / 1600);
  const prompt = fields['prompt'] ? 6 : 0;
  const usage = fields['model']!.startsWith('whisper')
    ? { type: 'duration', seconds: Math.ceil(file.bytes.length / 16_000) }
    : {
        type: 'tokens',
        input_tokens: audio + prompt,
        input_token_details: { text_tokens: prompt, audio_tokens: audio },
        output_tokens: 12,
        total_tokens: audio + prompt + 12,
      };
  if (fields['stream'] === 'true') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const w of text.split(' '))
      res.write(`data: ${JSON.stringify({ type: 'transcript.text.delta', delta: `${w} ` })}\n\n`);
    res.end(`data: ${JSON.stringify({ type: 'transcript.text.done', text, usage })}\n\n`);
    return;
  }
  const body = JSON.stringify({ text, usage });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The content type OpenAI answers each speech format with. */
const SPEECH_TYPES: Record<string, string> = {
  mp3: 'audio/mpeg',
  opus: 'audio/opus',
  aac: 'audio/aac',
  flac: 'audio/flac',
  wav: 'audio/wav',
  pcm: 'audio/pcm',
};

/** The audio the mock speaks for an input: at 15 characters a second, as 24 kHz 16-bit samples for
 * pcm (a 44-byte header before them for wav), and 16,000 bytes a second for the compressed
 * formats. Its bytes follow a pattern, so that what reaches the client can be checked whole. */
export function mockSpeech(input: string, format: string): Buffer {
  const seconds = [...input].length / 15;
  const pcm = format === 'pcm' || format === 'wav';
  const n = Math.round(seconds * (pcm ? 24_000 : 8_000)) * 2 + (format === 'wav' ? 44 : 0);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

/**
 * Speech (POST /v1/audio/speech), in OpenAI's documented format: the audio, in the format asked
 * (mp3 by default), sent in 4 KB pieces as it is "made"; or, with `stream_format: "sse"` (not for
 * tts-1 and tts-1-hd), `speech.audio.delta` events of base64 audio and a `speech.audio.done` with
 * the usage in tokens: the input's (one for each 4 characters here) and the audio's (20 a second).
 */
export function speechAnswer(body: Record<string, unknown>, res: ServerResponse): undefined {
  const model = String(body['model'] ?? '');
  const input = body['input'];
  const error = (message: string): undefined => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } }));
    return undefined;
  };
  if (typeof input !== 'string' || !body['voice'] || !model)
    return error('model, input and voice are required');
  const format = String(body['response_format'] ?? 'mp3');
  const type = SPEECH_TYPES[format];
  if (!type) return error(`response_format ${format} is not supported`);
  const sse = body['stream_format'] === 'sse';
  if (sse && model.startsWith('tts-1')) return error(`stream_format sse is not supported for ${model}`);
  const audio = mockSpeech(input, format);
  const pieces: Buffer[] = [];
  for (let i = 0; i < audio.length; i += 4096) pieces.push(audio.subarray(i, i + 4096));
  res.writeHead(200, sse ? { 'content-type': 'text/event-stream' } : { 'content-type': type });
  const send = (i: number) => {
    if (res.destroyed) return;
    if (i < pieces.length) {
      const piece = pieces[i]!;
      const ok = sse
        ? res.write(
            `data: ${JSON.stringify({ type: 'speech.audio.delta', audio: piece.toString('base64') })}\n\n`,
          )
        : res.write(piece);
      if (ok) setImmediate(() => send(i + 1));
      else res.once('drain', () => send(i + 1));
      return;
    }
    if (!sse) return void res.end();
    const inputTokens = Math.ceil([...input].length / 4);
    const outputTokens = Math.ceil(([...input].length / 15) * 20);
    res.end(
      `data: ${JSON.stringify({
        type: 'speech.audio.done',
        usage: {
          input_tokens: inputTokens,
          output_tokens: outputTokens,
          total_tokens: inputTokens + outputTokens,
        },
      })}\n\n`,
    );
  };
  send(0);
  return undefined;
}

/**
 * A translation into English (POST /v1/audio/translations), in OpenAI's documented format: only
 * whisper-1 translates; its JSON is the text alone, its `verbose_json` the text with the audio's
 * duration (one second for each 16,000 bytes of the file here) and its segments, and `text` the
 * text.
 */
export function translationAnswer(contentType: string, raw: Buffer, res: ServerResponse): void {
  const form = mockForm(contentType, raw);
  const fail = (message: string) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } }));
  };
  if (!form?.file || !form.fields['model']) {
    fail('model and file are required');
    return;
  }
  if (form.fields['model'] !== 'whisper-1') {
    fail(`model ${form.fields['model']} cannot translate`);
    return;
  }
  const text = 'Good morning. Your parcel arrives today.';
  const duration = form.file.bytes.length / 16_000;
  const format = form.fields['response_format'] ?? 'json';
  if (format === 'text') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`${text}\n`);
    return;
  }
  const body =
    format === 'verbose_json'
      ? {
          task: 'translate',
          language: 'english',
          duration,
          text,
          segments: [{ id: 0, seek: 0, start: 0, end: duration, text: ` ${text}` }],
        }
      : { text };
  const json = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}
