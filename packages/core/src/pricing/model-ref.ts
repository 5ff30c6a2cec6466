/**
 * Other spellings of a model name to try when the catalog's own match clauses find nothing. They
 * are tried only after the exact lookup fails, so they never change a price the data already gives.
 */
const DATE_SUFFIXES = [/-\d{4}-\d{2}-\d{2}$/, /-\d{8}$/, /@\d{8}$/, /-\d{2}-\d{2}$/];
const BEDROCK_REGION = /^(?:us|eu|apac|ap|global|us-gov|jp|au|ca)\./;
const BEDROCK_ARN =
  /^arn:aws[\w-]*:bedrock:[^:]*:[^:]*:(?:foundation-model|inference-profile|application-inference-profile)\//;
const BEDROCK_VERSION = /(?:-v\d+(?::\d+)?|:\d+)$/;

export function modelVariants(ref: string, knownPrefixes: (p: string) => boolean): string[] {
  const out: string[] = [];
  const push = (v: string) => {
    if (v && v !== ref && !out.includes(v)) out.push(v);
  };
  let base = ref;
  // Bedrock ARNs and inference profiles: keep the model id after the last slash.
  if (BEDROCK_ARN.test(base)) {
    base = base.slice(base.lastIndexOf('/') + 1);
    push(base);
  }
  // Provider prefixes: openai/gpt-4o, bedrock/anthropic.claude..., models/gemini-2.5-pro.
  for (;;) {
    const slash = base.indexOf('/');
    if (slash <= 0) break;
    const prefix = base.slice(0, slash);
    if (prefix !== 'models' && !knownPrefixes(prefix)) break;
    base = base.slice(slash + 1);
    push(base);
  }
  if (BEDROCK_REGION.test(base)) {
    base = base.replace(BEDROCK_REGION, '');
    push(base);
  }
  const versionless = base.replace(BEDROCK_VERSION, '');
  push(versionless);
  for (const v of [base, versionless]) {
    for (const re of DATE_SUFFIXES) {
      if (re.test(v)) push(v.replace(re, ''));
    }
  }
  return out;
}
