import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { readAzureTrace } from './demo-data.js';

describe('demo data', () => {
  it('replays the Azure trace from the copy the package carries, whatever folder the demo runs in', () => {
    const trace = readAzureTrace(os.tmpdir());
    // The public trace's rows (SOURCES.md): 8,819 code requests and 19,366 conversation ones.
    expect(trace?.code).toHaveLength(8819);
    expect(trace?.conv).toHaveLength(19366);
    expect(trace?.conv[0]).toEqual({ offset: 0, input: expect.any(Number), output: expect.any(Number) });
    expect(trace!.conv.at(-1)!.offset).toBeGreaterThan(0);
  });
});
