import type { ServerResponse } from 'node:http';
import { mockForm } from './mock-batches.js';

/**
 * A transcription (POST /v1/audio/transcriptions), in OpenAI's documented format. gpt-4o-transcribe
 * answers with the text and its usage in tokens (the audio's: one for each 1,600 bytes of the file
 * here, and the prompt's text), streamed as `transcript.text.delta` events and a
 * `transcript.text.done` with the usage; whisper-1 gives its usage as the audio's seconds. A
 * `response_format` of text answers with the text alone.
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
