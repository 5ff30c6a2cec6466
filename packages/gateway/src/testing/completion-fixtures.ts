import type { ServerResponse } from 'node:http';

type Obj = Record<string, unknown>;

/**
 * A legacy text completion (POST /v1/completions), in OpenAI's documented format: the text in
 * `choices[].text`; streamed, a chunk a word, then (with `stream_options.include_usage`) a chunk
 * with no choices and the usage, then `[DONE]`.
 */
export function completionAnswer(body: Obj, res: ServerResponse): void {
  const model = String(body['model']);
  const words = ['\n\nThe', ' quick', ' brown', ' fox', ' jumps', ' over', ' the'];
  const usage = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };
  const base = {
    id: 'cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7',
    object: 'text_completion',
    created: 1_764_000_000,
    model,
  };
  if (body['stream'] !== true) {
    const text = JSON.stringify({
      ...base,
      system_fingerprint: 'fp_44709d6fcb',
      choices: [{ text: words.join(''), index: 0, logprobs: null, finish_reason: 'length' }],
      usage,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const withUsage = (body['stream_options'] as Obj | undefined)?.['include_usage'] === true;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunks = words.map((w, i) => ({
    ...base,
    choices: [{ text: w, index: 0, logprobs: null, finish_reason: i === words.length - 1 ? 'length' : null }],
  }));
  const events = chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`);
  if (withUsage) events.push(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`);
  events.push('data: [DONE]\n\n');
  res.end(events.join(''));
}
