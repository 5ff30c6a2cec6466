import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';

const cat = testCatalog();

/** An image generation's usage as OpenAI answers it: the prompt's text and image tokens in, the
 * image's tokens out. */
const usage = (text: number, image: number, out: number) => ({
  input_tokens: text + image,
  input_tokens_details: { text_tokens: text, image_tokens: image },
  output_tokens: out,
  total_tokens: text + image + out,
});

describe('image generation, priced from its usage', () => {
  const price = (model: string, u: unknown) =>
    pricedBy(cat, { provider: 'openai', api: 'openai-images', model, usage: u });

  it("prices the prompt's text and image tokens apart, and the image's tokens out", () => {
    // gpt-image-1: text in $5, images in $10, out $40 a million.
    const p = price('gpt-image-1', usage(50, 250, 1056));
    expect(exactToUsd(p.input)).toBe('0.00275');
    expect(exactToUsd(p.output)).toBe('0.04224');
    expect(exactToUsd(p.total)).toBe('0.04499');
    expect(p.tokens).toMatchObject({ input: 300, output: 1056 });
  });

  it("prices a smaller model's image at its own rates", () => {
    // gpt-image-1-mini: text in $2, out $8 a million.
    expect(exactToUsd(price('gpt-image-1-mini', usage(40, 0, 272)).total)).toBe('0.002256');
  });

  it('refuses a usage that is not an image generation', () => {
    expect(() => price('gpt-image-1', { prompt_tokens: 10, completion_tokens: 2 })).toThrow();
  });
});
