import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastCalls, mockedGateway, type TestApp } from '../testing/test-app.js';

type Failure = { status: number; code: string | null; message: string };

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: image generation', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  const client = (key: string) => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });

  beforeAll(async () => {
    await mock.start();
    ({ t, base } = await mockedGateway(mock.url));
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  /** A streamed medium image, with two partial images before it. */
  const STREAMED = {
    model: 'gpt-image-1',
    quality: 'medium',
    size: '1024x1024',
    stream: true,
    partial_images: 2,
  } as const;

  /** An image of the studio project's key: it came back whole (1.5 MB of base64), the request went
   * to `path` with the provider's key, and the call is metered at `cost`. */
  const expectStudioImage = async (
    answer: { data?: { b64_json?: string }[] },
    path: string,
    tokens: { input: number; output: number },
    cost: string,
  ) => {
    expect(answer.data?.[0]?.b64_json?.length).toBeGreaterThan(1_400_000);
    expect(mock.received.at(-1)).toMatchObject({ path, headers: { authorization: 'Bearer sk-upstream' } });
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      api: 'openai-images',
      model_requested: 'gpt-image-1',
      status: 'ok',
      pricing_status: 'priced',
      project: 'studio',
      tokens,
      cost_usd: cost,
    });
  };

  it('generates an image with the openai client, metered from its usage to the nano-dollar', async () => {
    const openai = client((await t.newKey({ project: 'studio' })).key);
    const image = await openai.images.generate({
      model: 'gpt-image-1',
      prompt: 'A lighthouse at dawn, in watercolour.',
      quality: 'medium',
      size: '1024x1024',
    });
    // 50 prompt tokens at $5 and 1,056 image tokens at $40 a million.
    await expectStudioImage(image, '/v1/images/generations', { input: 50, output: 1056 }, '0.04249');
  });

  it('streams partial images and the image as they come, metered from the last event', async () => {
    const openai = client((await t.newKey({})).key);
    const stream = await openai.images.generate({ ...STREAMED, prompt: 'A lighthouse at dawn.' });
    const events: string[] = [];
    for await (const e of stream) events.push(e.type);
    expect(events).toEqual([
      'image_generation.partial_image',
      'image_generation.partial_image',
      'image_generation.completed',
    ]);
    const [call] = await lastCalls(t, 1);
    // Each partial image adds 100 image tokens: 1,256 at $40, and 50 at $5, a million.
    expect(call).toMatchObject({ api: 'openai-images', status: 'ok', cost_usd: '0.05049' });
  });

  it("reserves the image's tokens at the quality and size asked on the key's budget", async () => {
    // $0.05 holds a low-quality image (272 tokens, about $0.011), not a high-quality 1536x1024
    // one (6,208 tokens: $0.25).
    const openai = client((await t.newKey({ budget_usd: 0.05, period: 'month' })).key);
    const from = mock.received.length;
    const refused = (await openai.images
      .generate({ model: 'gpt-image-1', prompt: 'A poster.', quality: 'high', size: '1536x1024' })
      .catch((e: unknown) => e)) as Failure;
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    expect(mock.received.length).toBe(from);
    const low = await openai.images.generate({
      model: 'gpt-image-1',
      prompt: 'A poster.',
      quality: 'low',
      size: '1024x1024',
    });
    expect(low.data).toHaveLength(1);
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({ status: 'ok', cost_usd: '0.01113' });
    // gpt-image-1.5's image tokens out are $32 a million (its text out is $10): 6,208 of them are
    // held at $0.199, past $0.10.
    const dear = client((await t.newKey({ budget_usd: 0.1, period: 'month' })).key);
    expect(
      await dear.images
        .generate({ model: 'gpt-image-1.5', prompt: 'A poster.', quality: 'high', size: '1536x1024' })
        .catch((e: unknown) => e),
    ).toMatchObject({ status: 429, code: 'budget_exceeded' });
  });

  it('prices the images of a model billed by the image, whose answer gives no usage, at their quality and size', async () => {
    const openai = client((await t.newKey({})).key);
    const image = await openai.images.generate({ model: 'dall-e-3', prompt: 'A cat.' });
    expect(image.data?.[0]?.url).toBe('https://images.example/0.png');
    // dall-e-3: $0.04 a standard square image.
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      api: 'openai-images',
      status: 'ok',
      pricing_status: 'priced',
      error_type: null,
      cost_usd: '0.04',
      tokens: { input: 0, output: 0, image_generations: 1 },
    });
    // Two HD portraits at $0.12; dall-e-2's three small squares at $0.016.
    await openai.images.generate({
      model: 'dall-e-3',
      prompt: 'A cat.',
      n: 2,
      quality: 'hd',
      size: '1024x1792',
    });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ cost_usd: '0.24', tokens: { image_generations: 2 } });
    await openai.images.generate({ model: 'dall-e-2', prompt: 'A cat.', n: 3, size: '256x256' });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ cost_usd: '0.048' });
    // dall-e-2's edits are billed as its images are: two at 512x512, $0.018 each.
    await openai.images.edit({
      model: 'dall-e-2',
      image: await toFile(Buffer.alloc(1000, 0x89), 'room.png', { type: 'image/png' }),
      prompt: 'A lamp.',
      n: 2,
      size: '512x512',
    });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ cost_usd: '0.036', tokens: { image_generations: 2 } });
  });

  it('holds a budget to the images asked for, at their price an image', async () => {
    // Two HD portraits of dall-e-3 come to $0.24: past $0.20, refused; one goes.
    const openai = client((await t.newKey({ budget_usd: 0.2, period: 'month' })).key);
    const refused = await openai.images
      .generate({ model: 'dall-e-3', prompt: 'A cat.', n: 2, quality: 'hd', size: '1024x1792' })
      .catch((e: unknown) => e as { status: number; code: string });
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    await openai.images.generate({ model: 'dall-e-3', prompt: 'A cat.', quality: 'hd', size: '1024x1792' });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ cost_usd: '0.12' });
  });

  /** A PNG-sized file to edit. */
  const png = (name: string) => toFile(Buffer.alloc(300_000, 0x89), name, { type: 'image/png' });

  it('edits images with the openai client, the form sent as it came, metered with its images in', async () => {
    const openai = client((await t.newKey({ project: 'studio' })).key);
    const edited = await openai.images.edit({
      model: 'gpt-image-1',
      image: [await png('room.png'), await png('lamp.png')],
      prompt: 'Put the lamp in the room.',
      quality: 'medium',
      size: '1024x1024',
    });
    // 50 prompt tokens at $5, two images of 765 tokens at $10 and 1,056 out at $40 a million.
    await expectStudioImage(edited, '/v1/images/edits', { input: 1580, output: 1056 }, '0.05779');
    const sent = mock.received.at(-1)!;
    expect(String(sent.headers['content-type'])).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent.raw.length).toBeGreaterThan(600_000);
  });

  it('streams an edit, metered from its last event', async () => {
    const openai = client((await t.newKey({})).key);
    const stream = await openai.images.edit({
      ...STREAMED,
      image: await png('room.png'),
      prompt: 'Brighter.',
    });
    const events: string[] = [];
    for await (const e of stream) events.push(e.type);
    expect(events).toEqual(['image_edit.partial_image', 'image_edit.partial_image', 'image_edit.completed']);
    // 1,256 image tokens out (each partial adds 100) at $40, 765 in at $10 and 50 at $5, a million.
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'ok', cost_usd: '0.05814' });
  });

  it("reserves an edit's images in and its image out on the key's budget", async () => {
    // Two images at high input fidelity (7,685 tokens each at most, $0.154) and a high-quality
    // image out ($0.166): past $0.25. At the default fidelity and medium quality, it fits.
    const openai = client((await t.newKey({ budget_usd: 0.25, period: 'month' })).key);
    const from = mock.received.length;
    const ask = async (quality: 'high' | 'medium', fidelity: 'high' | 'low') =>
      openai.images.edit({
        model: 'gpt-image-1',
        image: [await png('a.png'), await png('b.png')],
        prompt: 'Merge them.',
        quality,
        size: '1024x1024',
        input_fidelity: fidelity,
      });
    expect(await ask('high', 'high').catch((e: unknown) => e)).toMatchObject({
      status: 429,
      code: 'budget_exceeded',
    });
    expect(mock.received.length).toBe(from);
    expect((await ask('medium', 'low')).data).toHaveLength(1);
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'ok', cost_usd: '0.05779' });
  });
});
