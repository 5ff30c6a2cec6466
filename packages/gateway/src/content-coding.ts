/** The content codings the gateway decodes, in a request body and in an upstream's answer. */
export type Inflater = 'gunzip' | 'brotli' | 'inflate' | 'inflate-raw';

const CODINGS: Record<string, (first: number | undefined) => Inflater> = {
  gzip: () => 'gunzip',
  'x-gzip': () => 'gunzip',
  br: () => 'brotli',
  // zlib-wrapped as the standard says, or raw as some senders send it: the first byte tells.
  deflate: (first) => (((first ?? 0) & 0x0f) === 0x08 ? 'inflate' : 'inflate-raw'),
};

/** Whether the gateway can decode a content coding (given in lower case). */
export function decodes(coding: string): boolean {
  return Object.hasOwn(CODINGS, coding);
}

/** What decodes a body in `coding`, given its first byte; null for a coding the gateway cannot read. */
export function inflaterFor(coding: string, first: number | undefined): Inflater | null {
  return decodes(coding) ? CODINGS[coding]!(first) : null;
}
