import { MockUpstream } from '@tally/gateway/testing';
import { afterAll, beforeAll } from 'vitest';
import { type ListedCall, lastCalls, postChat, type TestApp, testApp } from './test-app.js';

/** A suite's app, listening, whose gateway reaches a mock upstream, and a virtual key for it. */
export interface GatewaySuite {
  mock: MockUpstream;
  t: TestApp;
  base: string;
  key: string;
  /** A chat completions call with the suite's key (one user turn, unless `body` gives messages). */
  chat(body: Record<string, unknown>): ReturnType<typeof postChat>;
  /** The last `n` calls recorded, newest first. */
  lastCalls(n?: number): Promise<ListedCall[]>;
}

/** Starts the mock and the app before the suite's tests (with `gateway` as the app's gateway
 * config, given the mock's URL) and stops them after. */
export function gatewaySuite(gateway: (mockUrl: string) => Record<string, unknown>): GatewaySuite {
  const s = {
    mock: new MockUpstream(),
    chat: (body: Record<string, unknown>) => postChat(s.base, s.key, body),
    lastCalls: (n = 1) => lastCalls(s.t, n),
  } as GatewaySuite;
  beforeAll(async () => {
    await s.mock.start();
    s.t = await testApp({ gateway: gateway(s.mock.url) });
    s.base = await s.t.listen();
    s.key = (await s.t.newKey({ project: 'p' })).key;
  });
  afterAll(async () => {
    await s.t?.shutdown();
    await s.mock.stop();
  });
  return s;
}
