import type { Clause } from './catalog-types.js';

const regexCache = new Map<string, RegExp>();

/** Evaluates a match clause against a (lower-cased) model or provider name. */
export function matches(clause: Clause, text: string): boolean {
  if ('equals' in clause) return text === clause.equals;
  if ('starts_with' in clause) return text.startsWith(clause.starts_with);
  if ('ends_with' in clause) return text.endsWith(clause.ends_with);
  if ('contains' in clause) return text.includes(clause.contains);
  if ('regex' in clause) {
    let re = regexCache.get(clause.regex);
    if (!re) {
      re = new RegExp(clause.regex);
      regexCache.set(clause.regex, re);
    }
    return re.test(text);
  }
  if ('or' in clause) return clause.or.some((c) => matches(c, text));
  return clause.and.every((c) => matches(c, text));
}
