import { countTokens as referenceCount } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { chatRecordings, SKIP_WITHOUT_RECORDINGS } from './testing/recorded.js';
import { countTokens, estimatePromptTokens, imageTokens, promptText } from './tokenizer.js';

type Obj = Record<string, unknown>;

const SAMPLES = [
  'Hello, world!',
  "I'm sure they'll say it's fine; we've DONE it before.",
  '  leading and trailing spaces   \n\n\tand tabs\r\n',
  'Ünïcödé façade, naïve café — and “quotes”.',
  '日本語のテキストも数えます。中文也一样。한국어도요.',
  'emoji: 👩‍👩‍👧‍👦 🇫🇷 😀😀😀',
  'function f(x) { return x ** 2 + 0x1F; } // 1234567890',
  '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  `${' '.repeat(700)}x`,
  'ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 3.14159 1e-9',
];

describe('o200k token counts', () => {
  it('match the reference encoder on hand-picked text', async () => {
    for (const s of SAMPLES) expect(await countTokens(s), s).toBe(referenceCount(s));
  });

  it('match the reference encoder on random text in many scripts', async () => {
    // Seeded, so a failure repeats: Latin, Cyrillic, Greek, Arabic, CJK, Hangul, emoji, digits,
    // punctuation and whitespace, in runs long enough to make long pieces.
    const alphabet = [
      ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
      ...'приветмирΑΒΓαβγδمرحبا',
      ...'東京日本首都人口中文文本计算한국어',
      '😀',
      '👩‍👩‍👧',
      ...'0123456789',
      ...'.,;:!?()[]{}"\'-_/\\@#$%^&*+=<>~`|',
      ' ',
      ' ',
      '  ',
      '\n',
      '\t',
      '。',
      '、',
    ];
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let t = 0; t < 300; t++) {
      let s = '';
      const len = 1 + Math.floor(rand() * 400);
      let run = alphabet[Math.floor(rand() * alphabet.length)]!;
      while (s.length < len) {
        if (rand() < 0.2) run = alphabet[Math.floor(rand() * alphabet.length)]!;
        s += rand() < 0.5 ? run : alphabet[Math.floor(rand() * alphabet.length)]!;
      }
      expect(await countTokens(s), JSON.stringify(s)).toBe(referenceCount(s));
    }
  });

  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    'match the reference encoder on every recorded prompt and answer',
    async () => {
      let n = 0;
      for (const r of chatRecordings()) {
        const texts = [promptText(r.request)];
        const choices = (r.body as Obj | null)?.['choices'];
        if (Array.isArray(choices)) {
          for (const c of choices as Obj[]) {
            const content = (c['message'] as Obj | undefined)?.['content'];
            if (typeof content === 'string') texts.push(content);
          }
        }
        for (const t of texts) {
          if (!t) continue;
          expect(await countTokens(t)).toBe(referenceCount(t));
          n++;
        }
      }
      expect(n).toBeGreaterThan(2000);
    },
  );

  it.skipIf(SKIP_WITHOUT_RECORDINGS)('estimate gpt-4o prompts as OpenAI counted them', async () => {
    // Plain string messages, no tools: the prompt is its texts plus 4 tokens a message (framing
    // and role) and 3 that prime the answer, so the estimate is exact.
    let checked = 0;
    for (const r of chatRecordings()) {
      const usage = (r.body as Obj | null)?.['usage'] as Obj | undefined;
      const model = String((r.body as Obj | null)?.['model'] ?? '');
      const messages = r.request['messages'];
      if (!usage || !model.startsWith('gpt-4o-2') || !Array.isArray(messages)) continue;
      if (r.request['tools'] || r.request['functions'] || r.request['response_format']) continue;
      if (!(messages as Obj[]).every((m) => typeof m['content'] === 'string' && !m['name'])) continue;
      expect(await estimatePromptTokens(r.request)).toBe(usage['prompt_tokens']);
      // Again, with the system prompt's count remembered from the first time.
      expect(await estimatePromptTokens(r.request)).toBe(usage['prompt_tokens']);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(18);
  });

  it('remembers the counts of standing texts without mixing them up', async () => {
    const system = 'You are a careful assistant who answers in exactly three sentences, citing sources.';
    const body = (sys: string, user: string) => ({
      messages: [
        { role: 'system', content: sys },
        { role: 'user', content: user },
      ],
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
    });
    const tools = JSON.stringify(body('', '').tools);
    const expected = (sys: string, user: string) =>
      referenceCount(sys) + referenceCount(user) + referenceCount(tools) + 4 * 2 + 3;
    for (let i = 0; i < 3; i++) {
      expect(await estimatePromptTokens(body(system, `question ${i}`))).toBe(
        expected(system, `question ${i}`),
      );
    }
    // A conversation that grows call by call: its earlier turns come back remembered.
    const turns = ['Plan a trip to Lisbon for four days.', 'Day 1: Alfama, the castle and fado.'];
    for (let i = 0; i < 4; i++) {
      const messages = turns.map((content, j) => ({ role: j % 2 ? 'assistant' : 'user', content }));
      expect(await estimatePromptTokens({ messages })).toBe(
        turns.reduce((n, t) => n + referenceCount(t), 0) + 4 * turns.length + 3,
      );
      turns.push(i % 2 ? `And on day ${i + 2}, what else?` : `Day ${i + 2}: Belém, by tram ${i}.`);
    }
    // One character more is a different text, counted afresh.
    const changed = `${system} Always.`;
    expect(await estimatePromptTokens(body(changed, 'question'))).toBe(expected(changed, 'question'));
  });
});

describe('prompt parts besides text', () => {
  it('counts the tool calls an assistant turn sends back, and Responses function items', () => {
    const chat = promptText({
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'rain, 4 °C' },
      ],
    });
    expect(chat).toContain('{\\"city\\":\\"Oslo\\"}');
    expect(chat).toContain('rain, 4 °C');
    const responses = promptText({
      input: [
        { type: 'function_call', call_id: 'c1', name: 'weather', arguments: '{"city":"Oslo"}' },
        { type: 'function_call_output', call_id: 'c1', output: 'rain, 4 °C' },
      ],
    });
    expect(responses).toContain('{"city":"Oslo"}');
    expect(responses).toContain('rain, 4 °C');
  });

  it('bounds the tokens of images from above, by detail and by provider', () => {
    const part = (detail?: string) => ({
      type: 'image_url',
      image_url: { url: 'data:,', ...(detail ? { detail } : {}) },
    });
    const chat = (model: string, ...parts: unknown[]) => ({
      model,
      messages: [{ role: 'user', content: parts }],
    });
    expect(imageTokens(chat('gpt-4o', part('high'), part(), part('low')))).toBe(1445 + 1445 + 85);
    expect(imageTokens(chat('gpt-4o-mini', part('low'), part('high')))).toBe(2833 + 2833 + 8 * 5667);
    expect(
      imageTokens({
        model: 'gpt-4.1',
        input: [{ role: 'user', content: [{ type: 'input_image', detail: 'low' }] }],
      }),
    ).toBe(85);
    expect(
      imageTokens({
        model: 'claude-sonnet-4-5',
        messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }],
      }),
    ).toBe(1600);
    expect(imageTokens(chat('gpt-4o', { type: 'text', text: 'no image' }))).toBe(0);
  });
});

describe('long texts', () => {
  /** Real text, many times over: the recorded prompts and answers, or the samples above. */
  function corpus(): string {
    const parts: string[] = [];
    if (!SKIP_WITHOUT_RECORDINGS) {
      for (const r of chatRecordings()) {
        parts.push(promptText(r.request));
        if (parts.length > 400) break;
      }
    }
    const text = parts.length > 0 ? parts.join('\n') : SAMPLES.join('\n');
    return text.repeat(Math.ceil(120_000 / text.length));
  }
  const cjk =
    '日本語のテキストを数えます。東京は日本の首都で、人口は千四百万人を超えています。中文的文本也一样需要计算。'.repeat(
      2000,
    );

  it('estimate a long newest turn from samples: a little over the exact count, for English and for CJK', async () => {
    for (const text of [corpus().slice(0, 60_000), cjk.slice(0, 60_000)]) {
      const exact = referenceCount(text);
      const est = (await estimatePromptTokens({ messages: [{ role: 'user', content: text }] })) - 4 - 3;
      expect(est / exact, text.slice(0, 20)).toBeGreaterThanOrEqual(1);
      expect(est / exact, text.slice(0, 20)).toBeLessThan(1.3);
    }
  });

  it('count a text past 64K characters by its own density, not a fixed characters-a-token', async () => {
    const text = cjk.slice(0, 100_000);
    const exact = referenceCount(text);
    const est = await countTokens(text);
    expect(est / exact).toBeGreaterThanOrEqual(1);
    expect(est / exact).toBeLessThan(1.3);
    // Three characters a token, as before, would have said a third of this.
    expect(Math.ceil(text.length / 3)).toBeLessThan(exact / 2);
  });

  it('count a turn of up to 4K characters exactly', async () => {
    const text = corpus().slice(0, 4000);
    expect(await estimatePromptTokens({ messages: [{ role: 'user', content: text }] })).toBe(
      referenceCount(text) + 4 + 3,
    );
  });
});
