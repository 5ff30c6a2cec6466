import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectProcessMetrics, GatewayRequestMetrics } from './metrics.js';

/** A response as the gateway's count reads it: its status, whether it was sent, and its close. */
function response(status: number, sent = true): ServerResponse {
  return Object.assign(new EventEmitter(), {
    statusCode: status,
    headersSent: sent,
  }) as unknown as ServerResponse;
}

describe("the gateway's request metrics", () => {
  it('shows counts by endpoint, status and code, and durations as a Prometheus histogram', async () => {
    const registry = new Registry();
    const m = new GatewayRequestMetrics(registry);
    const closed: ServerResponse[] = [];
    for (const [endpoint, status, sent] of [
      ['chat', 200, true],
      ['chat', 200, true],
      ['chat', 0, false],
      ['messages', 200, true],
    ] as const) {
      const res = response(status, sent);
      m.count(res, endpoint);
      closed.push(res);
    }
    for (const res of closed) res.emit('close');
    const text = await registry.metrics();
    expect(text).toContain('# TYPE tally_gateway_requests_total counter');
    expect(text).toContain('tally_gateway_requests_total{endpoint="chat",status="200",code=""} 2');
    expect(text).toContain('tally_gateway_requests_total{endpoint="chat",status="0",code=""} 1');
    expect(text).toContain('tally_gateway_requests_total{endpoint="messages",status="200",code=""} 1');
    expect(text).toContain('# TYPE tally_gateway_request_duration_seconds histogram');
    // Each bucket counts the requests at or under its bound: all of these, as they took no time.
    const buckets = [
      ...text.matchAll(
        /^tally_gateway_request_duration_seconds_bucket\{le="([^"]+)",endpoint="chat"\} (\d+)$/gm,
      ),
    ];
    expect(buckets.map((b) => b[1])).toEqual([
      '0.001',
      '0.005',
      '0.01',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '10',
      '30',
      '60',
      '+Inf',
    ]);
    expect(buckets.every((b) => b[2] === '3')).toBe(true);
    expect(text).toMatch(/^tally_gateway_request_duration_seconds_count\{endpoint="chat"\} 3$/m);
    expect(text).toMatch(/^tally_gateway_request_duration_seconds_sum\{endpoint="chat"\} [0-9.e-]+$/m);
    expect(text).toMatch(/^tally_gateway_request_duration_seconds_count\{endpoint="messages"\} 1$/m);
    // A response is counted once, however often it closes.
    closed[0]!.emit('close');
    expect(await registry.metrics()).toContain(
      'tally_gateway_requests_total{endpoint="chat",status="200",code=""} 2',
    );
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('tally_gateway_requests_total{');
  });

  it('puts a duration in the first bucket it fits, and one past them all in +Inf only', () => {
    const registry = new Registry();
    const m = new GatewayRequestMetrics(registry) as unknown as {
      record(endpoint: string, status: number, code: string, seconds: number): void;
    };
    for (const s of [0.0005, 0.001, 0.003, 0.7, 61]) m.record('chat', 200, '', s);
    return registry.metrics().then((text) => {
      const at = (le: string) =>
        Number(
          new RegExp(`_bucket\\{le="${le.replace('+', '\\+')}",endpoint="chat"\\} (\\d+)`).exec(text)?.[1],
        );
      expect([at('0.001'), at('0.005'), at('0.5'), at('1'), at('60'), at('+Inf')]).toEqual([
        2, 3, 3, 4, 4, 5,
      ]);
      expect(text).toMatch(/_sum\{endpoint="chat"\} 61\.7045$/m);
    });
  });
});

describe("the process's own metrics", () => {
  it("exports the process's and its event loop's, prefixed tally_", async () => {
    const registry = new Registry();
    collectProcessMetrics(registry);
    // The event loop's delay is sampled every 100 ms: a few samples.
    await new Promise((r) => setTimeout(r, 350));
    const text = await registry.metrics();
    expect(text).toMatch(/^tally_process_resident_memory_bytes \d+$/m);
    expect(text).toMatch(/^tally_nodejs_eventloop_lag_p99_seconds \d/m);
  });
});
