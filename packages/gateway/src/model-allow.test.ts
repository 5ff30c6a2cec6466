import { describe, expect, it } from 'vitest';
import { modelAllowed } from './model-allow.js';

describe("a key's model list", () => {
  it('takes names as they are, and * as any run of characters', () => {
    const models = ['gpt-4o*', 'anthropic/*', 'o3', 'my.model'];
    for (const m of [
      'gpt-4o',
      'gpt-4o-2024-08-06',
      'gpt-4o-mini',
      'anthropic/claude-sonnet-4-5',
      'o3',
      'my.model',
    ])
      expect(modelAllowed(models, m), m).toBe(true);
    // The rest of a name is literal: no other character means more than itself.
    for (const m of ['gpt-4', 'o3-mini', 'myXmodel', 'openai/gpt-4o', 'anthropic', 'xgpt-4o'])
      expect(modelAllowed(models, m), m).toBe(false);
    expect(modelAllowed(['*'], 'anything/at-all')).toBe(true);
    expect(modelAllowed([], 'anything')).toBe(true);
    expect(modelAllowed(['claude-*-4-5'], 'claude-sonnet-4-5')).toBe(true);
    expect(modelAllowed(['claude-*-4-5'], 'claude-sonnet-4-6')).toBe(false);
  });
});
