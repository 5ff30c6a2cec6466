import { readFileSync } from 'node:fs';
import { createServer as createHttp, type RequestListener, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { resolve } from 'node:path';
import { TallyError } from '@tally/core';
import type { TallyConfig } from './config.js';

/**
 * The HTTP server a Tally process listens with: plain HTTP, or HTTPS (and so WSS for realtime
 * sessions, which the openai client's `OpenAIRealtimeWS` dials) with the config's `tls` certificate
 * and key. A file that cannot be read is a config error that names it.
 */
export function createListener(tls: TallyConfig['tls'], handler: RequestListener): Server {
  if (!tls) return createHttp(handler);
  const read = (field: string, file: string): Buffer => {
    try {
      return readFileSync(resolve(file));
    } catch (err) {
      throw new TallyError(
        'config_invalid',
        `tls.${field} ${file} cannot be read: ${(err as Error).message}`,
      );
    }
  };
  // An HTTPS server is an HTTP server over TLS: the same requests, upgrades and close.
  return createHttps(
    { cert: read('cert_file', tls.cert_file), key: read('key_file', tls.key_file) },
    handler,
  ) as unknown as Server;
}
