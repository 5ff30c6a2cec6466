import { formatScaled, parseScaled } from '../../money.js';
import type { Clause, Price, PriceSet } from '../catalog-types.js';

/** A per-token (or per-cent-per-token) JSON number as a per-million decimal string, exactly. */
export function perTokenToMtok(v: unknown, centsPerToken = false): string | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') return undefined;
  try {
    // ×1e6 per million; cents are ÷100. Scale 30 keeps every digit of a float's shortest text.
    const scaled = parseScaled(v, 30);
    if (scaled < 0n) return undefined;
    return formatScaled(scaled, centsPerToken ? 26 : 24);
  } catch {
    return undefined;
  }
}

/** A JSON number or decimal string multiplied by 10^power, as an exact decimal string. */
export function timesPow10(v: unknown, power: number): string | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') return undefined;
  try {
    const s = parseScaled(v, 24 + power);
    return s < 0n ? undefined : formatScaled(s, 24);
  } catch {
    return undefined;
  }
}

export function numToDecimal(v: unknown): string | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') return undefined;
  try {
    const s = parseScaled(v, 24);
    return s < 0n ? undefined : formatScaled(s, 24);
  } catch {
    return undefined;
  }
}

export function lowerClause(c: Clause): Clause {
  if ('equals' in c) return { equals: c.equals.toLowerCase() };
  if ('starts_with' in c) return { starts_with: c.starts_with.toLowerCase() };
  if ('ends_with' in c) return { ends_with: c.ends_with.toLowerCase() };
  if ('contains' in c) return { contains: c.contains.toLowerCase() };
  if ('regex' in c) return c;
  if ('or' in c) return { or: c.or.map(lowerClause) };
  return { and: c.and.map(lowerClause) };
}

/** Sets a price when there is one. */
export function setPrice(ps: PriceSet, key: keyof PriceSet, v: Price | undefined): void {
  if (v !== undefined) ps[key] = v;
}

/** Whether a price is zero at every tier. */
export function isZeroPrice(p: Price): boolean {
  return typeof p === 'string'
    ? Number(p) === 0
    : Number(p.base) === 0 && p.tiers.every((t) => Number(t.price) === 0);
}

/** Whether a source's raw listing prices nothing: every number under the keys `priced` accepts
 * (LiteLLM's `*cost*` fields, Portkey's `price`) is zero. A listing with a per-query or per-image
 * price is not. */
export function pricesNothing(raw: unknown, priced: (key: string) => boolean): boolean {
  if (typeof raw !== 'object' || raw === null) return true;
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v === 'number' ? priced(k) && v !== 0 : !pricesNothing(v, priced)) return false;
  }
  return true;
}

/** A name that says the model is free: `:free` (OpenRouter), `-Free` (Together), `openrouter/free`. */
export const FREE_NAME = /(?:^|[-_:/.])free(?:$|[-_:/.])/;

export function flatPrice(p: Price | undefined): string | undefined {
  return p === undefined ? undefined : typeof p === 'string' ? p : p.base;
}

/** Provider ids used by the other price tables, mapped onto the catalog's ids. */
export const PROVIDER_ALIASES: Record<string, string[]> = {
  azure: ['azure-openai', 'azure_openai', 'azure_text'],
  google: ['gemini', 'vertex', 'vertex_ai', 'vertex-ai', 'google-ai-studio', 'google-gla', 'google-vertex'],
  aws: ['bedrock', 'amazon', 'bedrock_converse', 'bedrock-converse', 'aws-bedrock', 'amazon_nova'],
  'x-ai': ['xai', 'grok'],
  together: ['together-ai', 'together_ai', 'togetherai'],
  fireworks: ['fireworks-ai', 'fireworks_ai', 'fireworksai', 'fireworks_ai-embedding-models'],
  mistral: ['mistral-ai', 'mistral_ai', 'mistralai', 'codestral', 'text-completion-codestral'],
  moonshotai: ['moonshot'],
  voyageai: ['voyage'],
  perplexity: ['perplexity-ai'],
  cohere: ['cohere_chat'],
  openai: ['text-completion-openai'],
  novita: ['novita-ai'],
  zai: ['z-ai'],
  zhipuai: ['zhipu'],
};

/** A source's provider name to a catalog id: a known alias, else the name in kebab-case. */
export function canonicalProvider(name: string): string {
  const n = name.toLowerCase();
  if (n.startsWith('vertex_ai')) return 'google';
  for (const [id, aliases] of Object.entries(PROVIDER_ALIASES)) {
    if (id === n || aliases.includes(n)) return id;
  }
  return n.replace(/_/g, '-');
}
