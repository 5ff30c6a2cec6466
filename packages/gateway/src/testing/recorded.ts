import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Test support: the recorded OpenAI responses in shared/data (FauxpenAI, Apache-2.0). */
export const SHARED_DATA = fileURLToPath(new URL('../../../../../shared/data', import.meta.url));
export const HAS_RECORDINGS = existsSync(`${SHARED_DATA}/openai-recorded`);
export const SKIP_WITHOUT_RECORDINGS = !HAS_RECORDINGS && !process.env['CI'];

export interface Recording {
  request: Record<string, unknown>;
  status: number;
  /** A JSON body, or the list of chunks of a stream. */
  body: unknown;
}

function load(file: string): Recording[] {
  const path = `${SHARED_DATA}/openai-recorded/fauxpenai-spec/${file}`;
  if (!existsSync(path)) return [];
  const data = JSON.parse(gunzipSync(readFileSync(path)).toString()) as Record<
    string,
    { scenario?: { requestBody?: Record<string, unknown> }; response?: { status: number; body: unknown } }
  >;
  const out: Recording[] = [];
  for (const r of Object.values(data)) {
    if (!r.response || !r.scenario?.requestBody) continue;
    out.push({ request: r.scenario.requestBody, status: r.response.status, body: r.response.body });
  }
  return out;
}

let chat: Recording[] | null = null;
let embeddings: Recording[] | null = null;

export function chatRecordings(): Recording[] {
  chat ??= load('chatcompletions/results.json.gz');
  return chat;
}

export function embeddingRecordings(): Recording[] {
  embeddings ??= load('embeddings/results.json.gz');
  return embeddings;
}
