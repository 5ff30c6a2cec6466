import type { Dispatcher } from 'undici';
import { Pool } from 'undici';

/** One keep-alive pool per upstream origin. */
export class Upstreams {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly connections = 128) {}

  pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: this.connections, pipelining: 1, keepAliveTimeout: 30_000 });
      this.pools.set(origin, p);
    }
    return p;
  }

  request(
    origin: string,
    opts: {
      path: string;
      method: 'GET' | 'POST';
      headers: Record<string, string>;
      body?: Buffer | string;
      signal?: AbortSignal;
      timeoutMs: number;
    },
  ): Promise<Dispatcher.ResponseData> {
    return this.pool(origin).request({
      path: opts.path,
      method: opts.method,
      headers: opts.headers,
      body: opts.body ?? null,
      ...(opts.signal ? { signal: opts.signal } : {}),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
