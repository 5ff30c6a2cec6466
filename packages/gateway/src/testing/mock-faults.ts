import type { IncomingMessage, ServerResponse } from 'node:http';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { chatRecordings } from './recorded.js';

/** A whole chat answer, as an upstream would send it. */
const ANSWER = JSON.stringify({
  id: 'chatcmpl-whole',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Packed.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
});

const CODINGS: Record<string, [string, (b: Buffer) => Buffer]> = {
  'fault-gzip': ['gzip', gzipSync],
  'fault-deflate': ['deflate', deflateSync],
  'fault-deflate-raw': ['deflate', deflateRawSync],
  'fault-br': ['br', brotliCompressSync],
  'fault-bad-gzip': ['gzip', (b) => b],
  'fault-zstd': ['zstd', (b) => b],
};

/**
 * Whole answers that are broken in the ways an upstream (or a proxy in front of it) breaks them,
 * for any endpoint; true when `model` named one and it was answered:
 * fault-html (a 200 HTML page), fault-short (JSON cut short by a content-length shorter than the
 * body), fault-gzip, fault-deflate, fault-deflate-raw, fault-br (the answer compressed although
 * the gateway asked for identity), fault-bad-gzip (labelled gzip, not compressed), fault-zstd (a
 * coding the gateway does not read), fault-redirect (a 307), fault-html-502 (a proxy's HTML error
 * page), fault-key-echo (a 401 that quotes the key it was sent, whole and cut short), fault-huge
 * (a 200 whose body goes on, 64 kB at a time, until the connection is closed or 200 MB are sent),
 * fault-context and fault-too-long (a prompt too long for the model, in OpenAI's and Anthropic's
 * words), fault-filtered (Azure's content filter refusing the prompt).
 */
export function wholeFault(model: string, res: ServerResponse, headers: IncomingMessage['headers']): boolean {
  const coded = CODINGS[model];
  if (coded) {
    const body = coded[1](Buffer.from(ANSWER));
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-encoding': coded[0],
      'content-length': body.length,
    });
    res.end(body);
    return true;
  }
  switch (model) {
    case 'served-as-path':
      // An answer naming its model as vLLM does, by the path it was loaded from.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ANSWER.replace('"gpt-4o-2024-08-06"', '"/models/served-as-path"'));
      return true;
    case 'fault-bad-usage':
      // A usage object with a count no provider would send: it cannot be priced.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ANSWER.replace('"completion_tokens":2', '"completion_tokens":-2'));
      return true;
    case 'fault-html':
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body><h1>Welcome to nginx!</h1></body></html>');
      return true;
    case 'fault-html-502':
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>');
      return true;
    case 'fault-short': {
      // Written on the socket itself: Node's server would not send a length that is wrong.
      const socket = res.socket!;
      socket.write(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${ANSWER.length - 20}\r\nconnection: close\r\n\r\n${ANSWER}`,
      );
      socket.end();
      return true;
    }
    case 'fault-redirect':
      res.writeHead(307, { location: 'https://elsewhere.example/v1/chat/completions' });
      res.end();
      return true;
    case 'fault-key-echo': {
      const auth = headers['authorization'];
      const key = typeof auth === 'string' ? auth.replace(/^Bearer /, '') : String(headers['x-api-key']);
      const text = JSON.stringify({
        error: {
          message: `Incorrect API key provided: ${key}. Or was it ${key.slice(0, 20)}...? You can find your API key at https://platform.openai.com/account/api-keys.`,
          type: 'invalid_request_error',
          code: 'invalid_api_key',
        },
      });
      res.writeHead(401, {
        'content-type': 'application/json',
        'openai-organization': 'org-mock',
        'anthropic-organization-id': 'aorg-mock',
      });
      res.end(text);
      return true;
    }
    case 'fault-context': {
      // OpenAI's answer to a prompt too long for the model, as recorded (FauxpenAI).
      const rec = chatRecordings().find(
        (r) => (r.body as { error?: { code?: unknown } }).error?.code === 'context_length_exceeded',
      );
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(rec?.body));
      return true;
    }
    case 'fault-too-long':
      // Anthropic's (its documented error shape, and the message its API gives).
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          type: 'error',
          error: {
            type: 'invalid_request_error',
            message: 'prompt is too long: 208310 tokens > 200000 maximum',
          },
        }),
      );
      return true;
    case 'fault-filtered':
      // Azure OpenAI's content filter refusing a prompt (its documented error).
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message:
              "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
            type: null,
            param: 'prompt',
            code: 'content_filter',
            status: 400,
            innererror: {
              code: 'ResponsibleAIPolicyViolation',
              content_filter_result: {
                hate: { filtered: false, severity: 'safe' },
                self_harm: { filtered: false, severity: 'safe' },
                sexual: { filtered: false, severity: 'safe' },
                violence: { filtered: true, severity: 'medium' },
              },
            },
          },
        }),
      );
      return true;
    case 'fault-huge': {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id":"huge","pad":"');
      writeUntilClosed(res, 'x'.repeat(64 * 1024), 3200, '"}');
      return true;
    }
    default:
      return false;
  }
}

/** Writes `piece` `times` times, as fast as the reader takes it, then `end`; stops at once if the
 * connection is closed. */
export function writeUntilClosed(res: ServerResponse, piece: string, times: number, end: string): void {
  let sent = 0;
  const more = () => {
    while (!res.destroyed && sent < times) {
      sent++;
      if (!res.write(piece)) return void res.once('drain', more);
    }
    if (!res.destroyed) res.end(end);
  };
  more();
}
