/** Shapes the Responses API shares between whole answers and streams, from Anthropic's terms. */
type Obj = Record<string, unknown>;

/** Anthropic stop reasons that end a Response as `incomplete`, with the reason OpenAI gives. */
export const FINISH_INCOMPLETE: Record<string, string> = {
  max_tokens: 'max_output_tokens',
  refusal: 'content_filter',
};

/** Anthropic usage in the Responses API's terms: input tokens include cache reads and writes. */
export function responsesUsage(u: Obj): Obj {
  const input = Number(u['input_tokens'] ?? 0);
  const read = Number(u['cache_read_input_tokens'] ?? 0);
  const write = Number(u['cache_creation_input_tokens'] ?? 0);
  const output = Number(u['output_tokens'] ?? 0);
  const prompt = input + read + write;
  return {
    input_tokens: prompt,
    input_tokens_details: { cached_tokens: read },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: prompt + output,
  };
}
