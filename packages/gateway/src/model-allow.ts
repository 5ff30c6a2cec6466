/**
 * A key's model list (`models`): names a call may use, each a model name or a pattern in which `*`
 * stands for any run of characters (`gpt-4o*` takes `gpt-4o` and `gpt-4o-2024-08-06`,
 * `anthropic/*` every model through that prefix). An empty list allows any model.
 */
const compiled = new WeakMap<readonly string[], (model: string) => boolean>();

function matcher(models: readonly string[]): (model: string) => boolean {
  const exact = new Set(models.filter((m) => !m.includes('*')));
  const patterns = models
    .filter((m) => m.includes('*'))
    .map((m) => new RegExp(`^${m.split('*').map(literal).join('.*')}$`, 's'));
  return (model) => exact.has(model) || patterns.some((p) => p.test(model));
}

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether a key with this model list may use `model`. */
export function modelAllowed(models: readonly string[], model: string): boolean {
  if (models.length === 0) return true;
  let m = compiled.get(models);
  if (!m) {
    m = matcher(models);
    compiled.set(models, m);
  }
  return m(model);
}
