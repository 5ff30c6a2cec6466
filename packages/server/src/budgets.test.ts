import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDuckDbStore } from '@tally/store';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AlertService } from './budgets.js';
import { AlertRelay } from './replica.js';

const alert = {
  kind: 'budget.threshold' as const,
  tenant: 't',
  budgetId: 'b1',
  scope: 'project' as const,
  subject: 'support',
  threshold: 0.8,
  spentUsd: '80',
  limitUsd: '100',
  period: '2026-11',
  resetsAt: '2026-12-01T00:00:00.000Z',
  time: '2026-11-24T12:00:00.000Z',
};

describe('AlertService', () => {
  it('POSTs each alert to the webhook, signed, and retries with backoff until it is taken', async () => {
    const bodies: unknown[] = [];
    const signed: boolean[] = [];
    let calls = 0;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        calls++;
        bodies.push(JSON.parse(body));
        // What a receiver checks: the HMAC of "<timestamp>.<body>" under the shared secret.
        const mac = createHmac('sha256', 'whsec-0123456789abcdef')
          .update(`${req.headers['x-tally-timestamp']}.${body}`)
          .digest('hex');
        signed.push(req.headers['x-tally-signature'] === `sha256=${mac}`);
        res.writeHead(calls < 3 ? 503 : 204);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const alerts = new AlertService(store, pino({ level: 'silent' }), url, 5, 'whsec-0123456789abcdef');
    alerts.emit(alert);
    await alerts.drain();
    expect(calls).toBe(3);
    // Every try carries the stored alert's id, by which a receiver drops a repeat.
    expect(bodies[2]).toEqual({ type: 'budget.threshold', id: expect.stringMatching(/^alert_/), ...alert });
    expect(new Set(bodies.map((b) => (b as { id: string }).id)).size).toBe(1);
    expect(signed).toEqual([true, true, true]);
    // The same alert raised again (a replica resending one whose answer it lost) is stored and
    // delivered once; another threshold of the same budget is an alert of its own.
    alerts.emit({ ...alert, time: '2026-11-24T12:00:05.000Z' });
    await alerts.drain();
    expect(calls).toBe(3);
    alerts.emit({ ...alert, threshold: 1 });
    await alerts.drain();
    expect(calls).toBe(4);
    expect(await store.listAlerts('t', 10)).toHaveLength(2);
    server.close();
    await store.close();
  });

  it('relays a replica alert until the server takes it, in order', async () => {
    const sent: number[] = [];
    let failures = 2;
    const errors: unknown[] = [];
    const relay = new AlertRelay(
      async (a) => {
        if (failures-- > 0) throw new Error('ECONNREFUSED');
        sent.push(a.threshold);
      },
      (err) => errors.push(err),
      5,
    );
    relay.push(alert);
    relay.push({ ...alert, threshold: 1 });
    const until = Date.now() + 2000;
    while (sent.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(sent).toEqual([0.8, 1]);
    expect(errors).toHaveLength(2);
    expect(relay.pending).toBe(0);
    await relay.close();
  });

  it('stores an alert raised twice at once only once, as it was raised', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const alerts = new AlertService(store, pino({ level: 'silent' }), undefined);
    alerts.emit(alert);
    alerts.emit(alert);
    await alerts.drain();
    expect(await store.listAlerts('t', 10)).toHaveLength(1);
    const stored = await store.listAlerts('t', 10);
    expect(stored).toEqual([
      expect.objectContaining({ kind: 'budget.threshold', subject: 'b1', payload: alert }),
    ]);
    await store.close();
  });

  it('stores an alert without waiting for the webhook, which stops after its last try', async () => {
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const alerts = new AlertService(store, pino({ level: 'silent' }), url, 20);
    const order: string[] = [];
    alerts.emit(alert);
    const drained = alerts.drain().then(() => order.push('drained'));
    await alerts.stored();
    order.push('stored');
    expect(await store.listAlerts('t', 10)).toHaveLength(1);
    await drained;
    server.close();
    // Six tries, 20 ms doubling between them (620 ms), and no wait after the last.
    expect(calls).toBe(6);
    expect(order).toEqual(['stored', 'drained']);
    await store.close();
  });
});
