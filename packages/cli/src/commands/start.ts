import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Pricer, systemClock } from '@tally/core';
import type { TallyConfig } from '@tally/server';
import type { Store } from '@tally/store';
import type { Command } from 'commander';
import { loadConfig } from '../load-config.js';
import { loadPricer } from '../pricer.js';

export interface RunningServer {
  url: string;
  adminKey: string | null;
  close(): Promise<void>;
}

export async function openStore(config: TallyConfig, cwd: string, file = 'tally.duckdb'): Promise<Store> {
  const dataDir = resolve(cwd, config.data_dir);
  const path = config.store.path ?? resolve(dataDir, file);
  // The server and the store load when a command needs them, so that the others (a gateway
  // replica, keys, price) never load DuckDB's library.
  const { createDuckDbStore } = await import('@tally/store');
  // The store, its log and the key file hold calls and secrets: the folders made for them are the
  // user's alone (files DuckDB makes in them are 0644, by the umask).
  if (path !== ':memory:') mkdirSync(resolve(path, '..'), { recursive: true, mode: 0o700 });
  const store = await createDuckDbStore({
    path,
    memoryLimit: config.store.memory_limit,
    threads: config.store.threads,
  });
  await store.migrate();
  return store;
}

/** Without TALLY_ADMIN_KEY, the first start makes an admin key, stores its hash, and returns the key
 * so it can be printed once. Later starts find the stored hash and return null. */
async function ensureAdminKey(store: Store, config: TallyConfig): Promise<string | null> {
  if (config.admin_key) return null;
  const keys = await store.listKeys(config.tenant);
  if (keys.some((k) => k.role === 'admin' && k.revoked_at === null)) return null;
  const { generateKey, hashKey } = await import('@tally/server');
  const key = generateKey('admin');
  await store.createKey({
    tenant: config.tenant,
    id: 'admin',
    hash: hashKey(key),
    prefix: key.slice(0, 12),
    role: 'admin',
    name: 'first admin',
    tags: {},
    project: null,
    team: null,
    user: null,
    models: [],
    rpm: null,
    tpm: null,
    budget_id: null,
    created_at: systemClock.now(),
    expires_at: null,
    revoked_at: null,
  });
  return key;
}

export interface StartOptions {
  /** Store file name inside the data dir. */
  file?: string;
  /** Runs after migrations, before the server listens (the demo loads its data here). */
  prepare?: (store: Store, price: Pricer) => Promise<void>;
}

/** The key that encrypts provider secrets: from config, or a key file made once beside the data. */
export async function secretKey(config: TallyConfig, cwd: string): Promise<Buffer> {
  const { SecretBox } = await import('@tally/server');
  if (config.secret_key) return SecretBox.parseKey(config.secret_key);
  const file = resolve(cwd, config.data_dir, 'secret.key');
  if (!existsSync(file)) {
    mkdirSync(resolve(file, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } else if ((statSync(file).mode & 0o077) !== 0) {
    // A key file others may read (copied, or made by an older version) is made the user's alone.
    chmodSync(file, 0o600);
  }
  return SecretBox.parseKey(readFileSync(file, 'utf8'));
}

export async function startServer(
  config: TallyConfig,
  cwd: string,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const store = await openStore(config, cwd, opts.file);
  const adminKey = await ensureAdminKey(store, config);
  const { price, version, catalog } = loadPricer(config);
  if (opts.prepare) await opts.prepare(store, price);
  const { buildApp } = await import('@tally/server');
  const tally = await buildApp({
    config,
    store,
    price,
    priceVersion: version,
    maxOutput: (provider, model, tenant) => catalog.maxOutputTokens(provider, model, tenant),
    secretKey: await secretKey(config, cwd),
    // Calls the store cannot take yet wait here (not for a store kept only in memory).
    ...(store.info.location === ':memory:'
      ? {}
      : { spoolDir: resolve(cwd, config.data_dir, 'spool', 'server') }),
  });
  const listened = await tally.app.listen({ port: config.port, host: config.host });
  // Fastify names the address http:// whatever its server; with a certificate it is https://.
  const address = config.tls ? listened.replace(/^http:/, 'https:') : listened;
  // The first budgeted call would otherwise wait for the token counter to load.
  void import('@tally/gateway').then((g) => g.warmTokenizer());
  return {
    url: address,
    adminKey,
    async close() {
      await tally.close();
      await store.close();
    },
  };
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the Tally server (gateway, ingest and API) on the embedded store')
    .option('-p, --port <port>', 'port to listen on (default 4000)')
    .option('--host <host>', 'address to bind (default 127.0.0.1)')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate, PEM (or set TALLY_TLS_CERT)')
    .option('--tls-key <file>', "the certificate's private key, PEM (or set TALLY_TLS_KEY)")
    .action(async (opts: ListenFlags) => {
      const config = configFromFlags(program, opts);
      const server = await startServer(config, process.cwd());
      process.stdout.write(`Tally is listening on ${server.url}\n`);
      if (server.adminKey) {
        process.stdout.write(
          `\nAdmin key (shown once; store it now, or set TALLY_ADMIN_KEY):\n  ${server.adminKey}\n\n`,
        );
      }
      await untilSignal(server);
    });
}

export interface ListenFlags {
  port?: string;
  host?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function configFromFlags(
  program: Command,
  opts: ListenFlags,
  gateway: Record<string, unknown> = {},
): TallyConfig {
  const global = program.opts<{ config?: string }>();
  const overrides: Record<string, unknown> = {};
  if (opts.port !== undefined) overrides['port'] = opts.port;
  if (opts.host !== undefined) overrides['host'] = opts.host;
  if (opts.tlsCert !== undefined || opts.tlsKey !== undefined)
    overrides['tls'] = {
      ...(opts.tlsCert !== undefined ? { cert_file: opts.tlsCert } : {}),
      ...(opts.tlsKey !== undefined ? { key_file: opts.tlsKey } : {}),
    };
  if (Object.keys(gateway).length > 0) overrides['gateway'] = gateway;
  return loadConfig({
    cwd: process.cwd(),
    env: process.env,
    ...(global.config ? { file: global.config } : {}),
    overrides,
  });
}

/** Serves until SIGINT or SIGTERM, then drains and closes. */
export function untilSignal(server: RunningServer): Promise<void> {
  return new Promise<void>((done) => {
    let closing = false;
    const stop = () => {
      if (closing) return;
      closing = true;
      server.close().then(done, done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
