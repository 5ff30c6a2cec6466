import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BpeCounter } from './bpe.js';

type Counter = (text: string) => number;

let loading: Promise<Counter> | null = null;
/** The counter once loaded: counting is then synchronous, with no promise a text. */
let loaded: Counter | null = null;

/** OpenAI's o200k ranks (shipped as a .tiktoken file by gpt-tokenizer) and its split pattern,
 * loaded on first use into a compact counter. */
function counter(): Promise<Counter> {
  loading ??= (async () => {
    const [{ O200K_TOKEN_SPLIT_REGEX }, text] = await Promise.all([
      import('gpt-tokenizer/encodingParams/constants'),
      readFile(fileURLToPath(import.meta.resolve('gpt-tokenizer/data/o200k_base.tiktoken'))),
    ]);
    const bpe = BpeCounter.fromTiktoken(text, O200K_TOKEN_SPLIT_REGEX);
    loaded = (t: string) => bpe.count(t);
    return loaded;
  })();
  return loading;
}

/** Loads the counter now rather than on the first call that needs it (about 50 ms), for a server
 * that has just started listening. */
export async function warmTokenizer(): Promise<void> {
  await counter();
}

/** Past this many characters a text is estimated, not tokenized: tokenizing costs about 80 ns a
 * character (5 ms for 64K). */
const TOKENIZE_UP_TO = 64 * 1024;

/** The newest turn of a prompt is new text on every call, and is counted on the request path: past
 * this many characters (0.25 ms of counting English, 1.4 ms Chinese or Japanese) it is estimated
 * from samples. */
const TURN_EXACT_UP_TO = 4 * 1024;

/** Samples of a long text: SAMPLES of SAMPLE_CHARS characters, spread evenly from its start to its
 * end, so that a text that changes kind part-way (prose, then code or a table) is seen in each. */
const SAMPLES = 4;
const SAMPLE_CHARS = 512;
/** The estimate is raised by this much: a reservation or a rate limit should err high. */
const SAMPLE_MARGIN = 1.1;

/**
 * The tokens of a long text, from the tokens a character of its samples: 0.1 ms (English) to
 * 0.7 ms (Chinese or Japanese), whatever the length. Unlike a fixed number of characters a token,
 * it follows the text's own density, three to four times higher for Chinese or Japanese than for
 * English.
 */
function sampledCount(count: Counter, text: string): number {
  const n = text.length;
  if (n <= SAMPLES * SAMPLE_CHARS) return count(text);
  const step = (n - SAMPLE_CHARS) / (SAMPLES - 1);
  let chars = 0;
  let tokens = 0;
  for (let i = 0; i < SAMPLES; i++) {
    let at = Math.floor(i * step);
    // Not from the second half of a surrogate pair.
    const c = text.charCodeAt(at);
    if (c >= 0xdc00 && c <= 0xdfff) at++;
    const piece = text.slice(at, at + SAMPLE_CHARS);
    chars += piece.length;
    tokens += count(piece);
  }
  return Math.ceil((tokens / chars) * n * SAMPLE_MARGIN);
}

/** Counts tokens with OpenAI's o200k encoding: exact for GPT-4o-era models, an estimate for
 * others. Used where the provider gives no count: reservations, rate limits and cut-off streams. */
export async function countTokens(text: string): Promise<number> {
  return countWith(loaded ?? (await counter()), text);
}

function countWith(count: Counter, text: string): number {
  if (text.length === 0) return 0;
  if (text.length > TOKENIZE_UP_TO) return sampledCount(count, text);
  return count(text);
}

/** The newest turn's tokens: counted when short, estimated from samples when long. */
function countTurn(count: Counter, text: string): number {
  return text.length > TURN_EXACT_UP_TO ? sampledCount(count, text) : countWith(count, text);
}

type Obj = Record<string, unknown>;

/** Counts of the texts that repeat call after call: system prompts, instructions, tool schemas
 * and the earlier turns of a conversation. Looking one up costs a hash of the text; counting it costs ~80 ns a character. Held to
 * MEMO_CHARS characters in all (emptied when full), and only for texts worth the entry. */
const memo = new Map<string, number>();
let memoChars = 0;
const MEMO_CHARS = 1_000_000;
const MEMO_MIN = 24;

function countRepeated(count: Counter, text: string): number {
  if (text.length < MEMO_MIN || text.length > TOKENIZE_UP_TO) return countWith(count, text);
  const hit = memo.get(text);
  if (hit !== undefined) return hit;
  const n = countWith(count, text);
  if (memoChars + text.length > MEMO_CHARS) {
    memo.clear();
    memoChars = 0;
  }
  memo.set(text, n);
  memoChars += text.length;
  return n;
}

function textOf(content: unknown, out: string[]): void {
  if (typeof content === 'string') out.push(content);
  else if (Array.isArray(content)) {
    for (const part of content) {
      if (typeof part === 'string') out.push(part);
      else if (part && typeof part === 'object') {
        const p = part as Obj;
        if (typeof p['text'] === 'string') out.push(p['text']);
        else if (p['content'] !== undefined) textOf(p['content'], out);
        else if (p['input'] !== undefined) out.push(JSON.stringify(p['input']));
        // Responses' function_call and function_call_output items.
        else if (typeof p['arguments'] === 'string') out.push(p['arguments']);
        else if (typeof p['output'] === 'string') out.push(p['output']);
      }
    }
  }
}

const STANDING_ROLES = new Set(['system', 'developer']);

/** The prompt's texts of a chat, responses, embeddings or messages request, for estimates: those
 * that stand from call to call (system, instructions, system and developer messages, tools, and
 * a conversation's earlier turns), and the rest (the newest turn, the input). */
function promptParts(body: Obj): { standing: string[]; turn: string[] } {
  const standing: string[] = [];
  const turn: string[] = [];
  textOf(body['system'], standing);
  textOf(body['instructions'], standing);
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    // A conversation resends its earlier turns on every call: only the newest is new text.
    const last = messages.length - 1;
    (messages as Obj[]).forEach((m, i) => {
      const into = i < last || STANDING_ROLES.has(m?.['role'] as string) ? standing : turn;
      textOf(m?.['content'], into);
      // An assistant turn's tool calls are prompt text when sent back.
      if (Array.isArray(m?.['tool_calls'])) into.push(JSON.stringify(m['tool_calls']));
    });
  }
  textOf(body['input'], turn);
  // An image's prompt (and a legacy completion's).
  textOf(body['prompt'], turn);
  if (body['tools'] !== undefined) standing.push(JSON.stringify(body['tools']));
  return { standing, turn };
}

/** The prompt's texts (system, instructions, messages, input, tools), for estimates. */
export function promptTexts(body: Obj): string[] {
  const { standing, turn } = promptParts(body);
  return [...standing, ...turn];
}

export function promptText(body: Obj): string {
  return promptTexts(body).join('\n');
}

/** Each text counted on its own, plus chat framing as OpenAI counts it: 3 tokens a message and
 * 1 for its role, and 3 that prime the answer (exact for plain gpt-4o prompts whose newest turn is
 * under 4K characters; a longer one is estimated from samples, a little high). */
export async function estimatePromptTokens(body: Obj): Promise<number> {
  const messages = Array.isArray(body['messages']) ? (body['messages'] as unknown[]).length : 0;
  const { standing, turn } = promptParts(body);
  const count = loaded ?? (await counter());
  let n = 0;
  for (const t of standing) n += countRepeated(count, t);
  for (const t of turn) n += countTurn(count, t);
  return n + 4 * messages + 3 + imageTokens(body);
}

/**
 * The most tokens the images of a prompt may be billed as, with no look at their size: OpenAI
 * bills a high-detail (or auto) image at most 85 + 170 for each of 8 tiles of 512 px (gpt-4o-mini:
 * 2,833 + 5,667 a tile), a low-detail one 85 (2,833); Anthropic about a token per 750 pixels, an
 * image being scaled down to 1.15 megapixels at most. An upper bound, as a budget's reservation
 * must be: the call settles at what the provider counted.
 */
export function imageTokens(body: Obj): number {
  const mini = /^(openai\/)?gpt-4o-mini/.test(String(body['model'] ?? ''));
  let n = 0;
  const visit = (content: unknown): void => {
    if (!Array.isArray(content)) return;
    for (const part of content) {
      if (!part || typeof part !== 'object') continue;
      const p = part as Obj;
      const type = p['type'];
      if (type === 'image_url' || type === 'input_image') {
        const detail = (p['image_url'] as Obj | undefined)?.['detail'] ?? p['detail'];
        n += detail === 'low' ? (mini ? 2833 : 85) : mini ? 2833 + 8 * 5667 : 85 + 8 * 170;
      } else if (type === 'image') n += 1600;
      else if (Array.isArray(p['content'])) visit(p['content']);
    }
  };
  const messages = body['messages'];
  if (Array.isArray(messages)) for (const m of messages as Obj[]) visit(m?.['content']);
  // Responses' input: its items, and their content (visit goes into a part's content).
  visit(body['input']);
  return n;
}
