import type { ServerResponse } from 'node:http';

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

export function imageAnswer(body: Obj, res: ServerResponse): void {
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
    input_tokens: textTokens,
    input_tokens_details: { image_tokens: 0, text_tokens: textTokens },
    output_tokens: out,
    total_tokens: textTokens + out,
  };
  const meta = { background: 'opaque', output_format: 'png', quality, size };
  if (body['stream'] === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (let i = 0; i < partials; i++) {
      const partial = {
        type: 'image_generation.partial_image',
        b64_json: IMAGE_B64.slice(0, 20_000),
        created_at: 1_764_000_000,
        ...meta,
        partial_image_index: i,
      };
      res.write(`event: image_generation.partial_image\ndata: ${JSON.stringify(partial)}\n\n`);
    }
    const done = {
      type: 'image_generation.completed',
      b64_json: IMAGE_B64,
      created_at: 1_764_000_000,
      ...meta,
      usage,
    };
    res.end(`event: image_generation.completed\ndata: ${JSON.stringify(done)}\n\n`);
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
