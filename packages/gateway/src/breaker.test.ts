import { fixedClock } from '@tally/core';
import { describe, expect, it } from 'vitest';
import { Breakers } from './breaker.js';

describe('Breakers', () => {
  it('opens after repeated failures, lets one probe through after the cooldown, and closes on success', () => {
    const clock = fixedClock(0);
    const b = new Breakers(() => clock.now(), 3, 1000);
    for (let i = 0; i < 3; i++) {
      expect(b.allows('a')).toBe(true);
      b.failure('a');
    }
    expect(b.allows('a')).toBe(false);
    expect(b.allows('b')).toBe(true);
    clock.advance(1000);
    expect(b.allows('a')).toBe(true); // the probe
    expect(b.allows('a')).toBe(false); // only one at a time
    b.failure('a');
    expect(b.isOpen('a')).toBe(true);
    clock.advance(1000);
    expect(b.allows('a')).toBe(true);
    b.success('a');
    expect(b.allows('a')).toBe(true);
    expect(b.isOpen('a')).toBe(false);
  });
});
