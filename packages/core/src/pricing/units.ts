/**
 * The usage units that prices attach to. Each unit has a set of dimensions; a unit whose
 * dimensions are a subset of another's is its ancestor, and a usage count includes the counts of
 * every descendant (input_tokens includes cache reads, audio and so on). This follows the unit
 * model of the genai-prices data, so that the same usage priced with the same data gives the same
 * figure.
 */
export interface Unit {
  /** Key in a usage object, e.g. cache_read_tokens. */
  usageKey: string;
  /** Key in a price set, e.g. cache_read_mtok. */
  priceKey: string;
  /** Units per quoted price (1e6 for per-million tokens). */
  per: number;
  dims: Readonly<Record<string, string>>;
  direction: 'input' | 'output' | null;
}

const M = 1_000_000;
const units: Unit[] = [];

function add(usageKey: string, priceKey: string, per: number, dims: Record<string, string>): void {
  const direction =
    dims['direction'] === 'input' || dims['direction'] === 'output' ? dims['direction'] : null;
  units.push({ usageKey, priceKey, per, dims, direction });
}

const tok = (d: 'input' | 'output', extra: Record<string, string> = {}) => ({
  family: 'tokens',
  direction: d,
  ...extra,
});

add('input_tokens', 'input_mtok', M, tok('input'));
add('output_tokens', 'output_mtok', M, tok('output'));
add('cache_read_tokens', 'cache_read_mtok', M, tok('input', { token_type: 'cache_read' }));
add('cache_write_tokens', 'cache_write_mtok', M, tok('input', { token_type: 'cache_write' }));
add(
  'cache_write_5m_tokens',
  'cache_write_5m_mtok',
  M,
  tok('input', { token_type: 'cache_write', cache_ttl: '5m' }),
);
add(
  'cache_write_1h_tokens',
  'cache_write_1h_mtok',
  M,
  tok('input', { token_type: 'cache_write', cache_ttl: '1h' }),
);
for (const m of ['text', 'audio', 'image', 'video']) {
  add(`input_${m}_tokens`, `input_${m}_mtok`, M, tok('input', { modality: m }));
  add(`output_${m}_tokens`, `output_${m}_mtok`, M, tok('output', { modality: m }));
  add(
    `cache_${m}_read_tokens`,
    `cache_${m}_read_mtok`,
    M,
    tok('input', { modality: m, token_type: 'cache_read' }),
  );
  add(
    `cache_${m}_write_tokens`,
    `cache_${m}_write_mtok`,
    M,
    tok('input', { modality: m, token_type: 'cache_write' }),
  );
  for (const ttl of ['5m', '1h']) {
    add(
      `cache_${m}_write_${ttl}_tokens`,
      `cache_${m}_write_${ttl}_mtok`,
      M,
      tok('input', { modality: m, token_type: 'cache_write', cache_ttl: ttl }),
    );
  }
}
add('input_tool_tokens', 'input_tool_mtok', M, tok('input', { token_type: 'tool' }));
for (const m of ['text', 'audio', 'image', 'video']) {
  add(`input_${m}_tool_tokens`, `input_${m}_tool_mtok`, M, tok('input', { modality: m, token_type: 'tool' }));
}
add('output_reasoning_tokens', 'output_reasoning_mtok', M, tok('output', { token_type: 'reasoning' }));
for (const m of ['text', 'audio', 'image', 'video']) {
  add(
    `output_${m}_reasoning_tokens`,
    `output_${m}_reasoning_mtok`,
    M,
    tok('output', { modality: m, token_type: 'reasoning' }),
  );
}
add('output_citation_tokens', 'output_citation_mtok', M, tok('output', { token_type: 'citation' }));
for (const m of ['text', 'audio', 'image', 'video']) {
  add(
    `output_${m}_citation_tokens`,
    `output_${m}_citation_mtok`,
    M,
    tok('output', { modality: m, token_type: 'citation' }),
  );
}
add('input_characters', 'input_mchars', M, { family: 'characters', direction: 'input' });
// Audio billed by its length (whisper-1, Deepgram): seconds, priced per thousand.
add('input_audio_seconds', 'input_audio_seconds_kcount', 1000, {
  family: 'seconds',
  direction: 'input',
  modality: 'audio',
});
add('input_text_messages', 'input_text_messages_kcount', 1000, {
  family: 'messages',
  direction: 'input',
  modality: 'text',
});
add('rerank_searches', 'rerank_searches_kcount', 1000, { family: 'rerank' });
add('web_searches', 'web_searches_kcount', 1000, { family: 'tool_calls', tool_type: 'web_search' });
add('social_searches', 'social_searches_kcount', 1000, { family: 'tool_calls', tool_type: 'social_search' });
add('storage_searches', 'storage_searches_kcount', 1000, {
  family: 'tool_calls',
  tool_type: 'storage_search',
});
// OpenAI's code interpreter: a session of a container, by its memory (1g is the default). None is
// the others' ancestor: a larger container is not priced at the default's fee.
for (const memory of ['1g', '4g', '16g', '64g']) {
  const name = memory === '1g' ? 'code_containers' : `code_containers_${memory}`;
  add(name, `${name}_kcount`, 1000, { family: 'tool_calls', tool_type: 'code_container', memory });
}
add('image_generations', 'image_generations_kcount', 1000, {
  family: 'tool_calls',
  tool_type: 'image_generation',
});
add('code_executions', 'code_executions_kcount', 1000, { family: 'tool_calls', tool_type: 'code_execution' });
/** Never read from usage: every call is one request. */
add('requests', 'requests_kcount', 1000, { family: 'requests' });

export const UNITS: readonly Unit[] = units;
export const UNIT_BY_PRICE_KEY: ReadonlyMap<string, Unit> = new Map(units.map((u) => [u.priceKey, u]));
export const UNIT_BY_USAGE_KEY: ReadonlyMap<string, Unit> = new Map(units.map((u) => [u.usageKey, u]));

/** True when a's dimensions are a subset of b's (a is b or an ancestor of b). */
export function isAncestorOrSelf(a: Unit, b: Unit): boolean {
  for (const k in a.dims) if (b.dims[k] !== a.dims[k]) return false;
  return true;
}

export function dimCount(u: Unit): number {
  return Object.keys(u.dims).length;
}
