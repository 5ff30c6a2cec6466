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

/** Past this many characters a prompt is estimated, not tokenized: tokenizing costs about 80 ns a
 * character, too much for the request path. Three characters a token overestimates most text. */
const TOKENIZE_UP_TO = 64 * 1024;

/** Counts tokens with OpenAI's o200k encoding: exact for GPT-4o-era models, an estimate for
 * others. Used where the provider gives no count: reservations, rate limits and cut-off streams. */
export async function countTokens(text: string): Promise<number> {
  return countWith(loaded ?? (await counter()), text);
}

function countWith(count: Counter, text: string): number {
  if (text.length === 0) return 0;
  if (text.length > TOKENIZE_UP_TO) return Math.ceil(text.length / 3);
  return count(text);
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
      textOf(m?.['content'], i < last || STANDING_ROLES.has(m?.['role'] as string) ? standing : turn);
    });
  }
  textOf(body['input'], turn);
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
 * 1 for its role, and 3 that prime the answer (exact for plain gpt-4o prompts). */
export async function estimatePromptTokens(body: Obj): Promise<number> {
  const messages = Array.isArray(body['messages']) ? (body['messages'] as unknown[]).length : 0;
  const { standing, turn } = promptParts(body);
  const count = loaded ?? (await counter());
  let n = 0;
  for (const t of standing) n += countRepeated(count, t);
  for (const t of turn) n += countWith(count, t);
  return n + 4 * messages + 3;
}
