// The floor for a metering proxy: what any gateway that meters each call into an embedded store
// must do at least, and nothing more. node:http in, an undici Pool out (as the harness's bare
// proxy), plus: the virtual key's SHA-256 looked up, the request's JSON parsed for its model, the
// answer's JSON parsed for its usage, the call priced in nano-dollars (one model's fixed rates),
// and one row a call appended to DuckDB, flushed every 1,000 rows or 500 ms.
// No budgets, rate limits, tokenizer, routing, attribution headers or recovery.
// Usage: PORT=9913 UPSTREAM=http://127.0.0.1:9911 DB=/tmp/floor.duckdb node metering-floor-proxy.mjs
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { DuckDBInstance } from '@duckdb/node-api';
import { Pool } from 'undici';

const KEY = 'tk-floor';
const keys = new Map([[createHash('sha256').update(KEY).digest('hex'), 'key_floor']]);
// gpt-4o's rates in nano-dollars a token: input, cached input, output.
const RATE = { input: 2500n, cached: 1250n, output: 10_000n };

const db = await DuckDBInstance.create(process.env.DB);
const conn = await db.connect();
await conn.run(`CREATE TABLE IF NOT EXISTS calls (
  id VARCHAR PRIMARY KEY, key_id VARCHAR, model VARCHAR, input BIGINT, cached BIGINT,
  output BIGINT, cost_nano BIGINT, latency_ms DOUBLE)`);
const appender = await conn.createAppender('calls');
let pending = 0;
const flush = () => {
  if (pending === 0) return;
  appender.flushSync();
  pending = 0;
};
setInterval(flush, 500).unref();

const pool = new Pool(process.env.UPSTREAM, { connections: 64 });
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const t0 = performance.now();
    try {
      const auth = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
      const keyId = keys.get(createHash('sha256').update(auth).digest('hex'));
      if (!keyId) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"invalid_api_key"}}');
        return;
      }
      const raw = Buffer.concat(chunks);
      const model = String(JSON.parse(raw.toString('utf8')).model);
      const up = await pool.request({
        path: req.url,
        method: req.method,
        body: raw,
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-floor' },
      });
      const out = Buffer.from(await up.body.arrayBuffer());
      const usage = JSON.parse(out.toString('utf8')).usage ?? {};
      res.writeHead(up.statusCode, {
        'content-type': up.headers['content-type'] ?? 'application/json',
        'content-length': out.length,
      });
      res.end(out);
      const input = BigInt(usage.prompt_tokens ?? 0);
      const cached = BigInt(usage.prompt_tokens_details?.cached_tokens ?? 0);
      const output = BigInt(usage.completion_tokens ?? 0);
      appender.appendVarchar(randomUUID());
      appender.appendVarchar(keyId);
      appender.appendVarchar(model);
      appender.appendBigInt(input);
      appender.appendBigInt(cached);
      appender.appendBigInt(output);
      appender.appendBigInt((input - cached) * RATE.input + cached * RATE.cached + output * RATE.output);
      appender.appendDouble(performance.now() - t0);
      appender.endRow();
      if (++pending >= 1000) flush();
    } catch (err) {
      res.writeHead(502);
      res.end(String(err));
    }
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => {
  flush();
  process.exit(0);
});
