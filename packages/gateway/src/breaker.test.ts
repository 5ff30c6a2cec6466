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
    // Asking does not take the probe: a plan that lists the upstream and never calls it does not
    // shut it out.
    expect(b.allows('a')).toBe(true);
    expect(b.allows('a')).toBe(true);
    b.claim('a'); // the probe goes
    expect(b.allows('a')).toBe(false); // only one at a time
    b.failure('a');
    expect(b.isOpen('a')).toBe(true);
    clock.advance(1000);
    expect(b.allows('a')).toBe(true);
    b.claim('a');
    b.success('a');
    expect(b.allows('a')).toBe(true);
    expect(b.isOpen('a')).toBe(false);
  });

  it('gives the probe back when its client leaves, and takes it back after a cooldown if it never reports', () => {
    const clock = fixedClock(0);
    const b = new Breakers(() => clock.now(), 1, 1000);
    b.failure('a');
    clock.advance(1000);
    b.claim('a');
    expect(b.allows('a')).toBe(false);
    b.release('a');
    expect(b.allows('a')).toBe(true);
    b.claim('a');
    clock.advance(999);
    expect(b.allows('a')).toBe(false);
    clock.advance(1);
    expect(b.allows('a')).toBe(true);
  });
});
