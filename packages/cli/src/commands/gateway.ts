import { resolve } from 'node:path';
import { TallyError } from '@tally/core';
import { buildReplica } from '@tally/server/replica';
import type { Command } from 'commander';
import { loadPricer } from '../pricer.js';
import { configFromFlags, type ListenFlags, untilSignal } from './start.js';

interface GatewayFlags extends ListenFlags {
  server?: string;
}

/** `tally gateway`: a stateless gateway replica in front of a Tally server. */
export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description(
      'run a stateless gateway replica that reads keys, budgets and providers from a Tally server and meters into it',
    )
    .option('-s, --server <url>', 'the Tally server (or set TALLY_SERVER_URL)')
    .option('-p, --port <port>', 'port to listen on (default 4000)')
    .option('--host <host>', 'address to bind (default 127.0.0.1)')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate, PEM (or set TALLY_TLS_CERT)')
    .option('--tls-key <file>', "the certificate's private key, PEM (or set TALLY_TLS_KEY)")
    .action(async (opts: GatewayFlags) => {
      const config = configFromFlags(program, opts, opts.server ? { server_url: opts.server } : {});
      if (!config.gateway_key) {
        throw new TallyError(
          'config_invalid',
          'A gateway replica authenticates to the server with a gateway key: set TALLY_GATEWAY_KEY, to the gateway_key of the server\'s config or to a key made with "tally keys create --role gateway".',
        );
      }
      const { price, version, catalog } = loadPricer(config);
      const replica = await buildReplica({
        config,
        serverKey: config.gateway_key,
        price,
        priceVersion: version,
        maxOutput: (provider, model, tenant) => catalog.maxOutputTokens(provider, model, tenant),
        // Calls the server cannot take yet wait here, and are sent when it is back.
        spoolDir: resolve(process.cwd(), config.data_dir, 'spool', 'replica'),
        onError: (err, what) => process.stderr.write(`tally gateway: ${what}: ${(err as Error).message}\n`),
      });
      await new Promise<void>((resolve, reject) => {
        replica.server.once('error', reject);
        replica.server.listen(config.port, config.host, () => resolve());
      });
      void import('@tally/gateway').then((g) => g.warmTokenizer());
      const addr = replica.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      process.stdout.write(
        `Tally gateway is listening on ${config.tls ? 'https' : 'http'}://${config.host}:${port}, reporting to ${config.gateway.server_url}\n`,
      );
      await untilSignal({ url: '', adminKey: null, close: () => replica.close() });
    });
}
