import type { ServerResponse } from 'node:http';
import { mockForm } from './mock-batches.js';

type Obj = Record<string, unknown>;

/**
 * OpenAI's image generation (POST /v1/images/generations), in its documented format: for a
 * gpt-image model, the images as base64 and the usage in tokens (the prompt's text, and the image's
 * tokens at its quality and size, as OpenAI's table gives them); streamed, a partial image event
 * for each asked, then the completed one with the usage. dall-e-3 answers with a URL and no usage.
 */

const IMAGE_TOKENS: Record<string, Record<string, number>> = {
  low: { '1024x1024': 272, '1024x1536': 408, '1536x1024': 400 },
  medium: { '1024x1024': 1056, '1024x1536': 1584, '1536x1024': 1568 },
  high: { '1024x1024': 4160, '1024x1536': 6240, '1536x1024': 6208 },
};

/** An image's bytes, as large as a 1024x1024 PNG is (about 1.5 MB of base64). */
const IMAGE_B64 = Buffer.alloc(1_100_000, 0x89).toString('base64');

/** The image tokens the mock bills each input image of an edit: a 1024x1024 image at high detail
 * (85 and 170 for each of four tiles), and 4,160 more at high input fidelity. */
export const EDIT_IMAGE_TOKENS = 765;
const HIGH_FIDELITY_TOKENS = 4_160;

/**
 * An image edit (POST /v1/images/edits, a multipart form: the image or images, an optional mask,
 * the prompt and the options), answered as a generation is, with the input images' tokens in its
 * usage and its stream's events named `image_edit.*`.
 */
export function imageEditAnswer(contentType: string, raw: Buffer, res: ServerResponse): void {
  const form = mockForm(contentType, raw);
  if (!form?.file || !form.fields['prompt']) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ error: { message: 'image and prompt are required', type: 'invalid_request_error' } }),
    );
    return;
  }
  const { fields } = form;
  const body: Obj = { ...fields, stream: fields['stream'] === 'true' };
  for (const k of ['n', 'partial_images']) if (fields[k]) body[k] = Number(fields[k]);
  const each = EDIT_IMAGE_TOKENS + (fields['input_fidelity'] === 'high' ? HIGH_FIDELITY_TOKENS : 0);
  imageAnswer(body, res, { imageTokens: each * form.files, events: 'image_edit' });
}

export function imageAnswer(
  body: Obj,
  res: ServerResponse,
  edit: { imageTokens: number; events: string } = { imageTokens: 0, events: 'image_generation' },
): void {
  const model = String(body['model'] ?? 'dall-e-2');
  const n = typeof body['n'] === 'number' ? body['n'] : 1;
  if (model.startsWith('dall-e')) {
    const text = JSON.stringify({
      created: 1_764_000_000,
      data: Array.from({ length: n }, (_, i) => ({
        url: `https://images.example/${i}.png`,
        revised_prompt: String(body['prompt']),
      })),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const quality = ['low', 'medium', 'high'].includes(String(body['quality']))
    ? String(body['quality'])
    : 'medium';
  const size = ['1024x1536', '1536x1024'].includes(String(body['size'])) ? String(body['size']) : '1024x1024';
  const partials = typeof body['partial_images'] === 'number' ? body['partial_images'] : 0;
  const textTokens = 50;
  const out = (IMAGE_TOKENS[quality]![size]! + 100 * partials) * n;
  const usage = {
    input_tokens: textTokens + edit.imageTokens,
    input_tokens_details: { image_tokens: edit.imageTokens, text_tokens: textTokens },
    output_tokens: out,
    total_tokens: textTokens + edit.imageTokens + out,
  };
  const meta = { background: 'opaque', output_format: 'png', quality, size };
  if (body['stream'] === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (let i = 0; i < partials; i++) {
      const partial = {
        type: `${edit.events}.partial_image`,
        b64_json: IMAGE_B64.slice(0, 20_000),
        created_at: 1_764_000_000,
        ...meta,
        partial_image_index: i,
      };
      res.write(`event: ${edit.events}.partial_image\ndata: ${JSON.stringify(partial)}\n\n`);
    }
    const done = {
      type: `${edit.events}.completed`,
      b64_json: IMAGE_B64,
      created_at: 1_764_000_000,
      ...meta,
      usage,
    };
    res.end(`event: ${edit.events}.completed\ndata: ${JSON.stringify(done)}\n\n`);
    return;
  }
  const text = JSON.stringify({
    created: 1_764_000_000,
    ...meta,
    data: Array.from({ length: n }, () => ({ b64_json: IMAGE_B64 })),
    usage,
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
