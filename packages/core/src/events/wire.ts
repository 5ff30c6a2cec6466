/**
 * Small, allocation-light readers for the ingest wire format. Ingest must sustain tens of
 * thousands of events a second, so events are checked by hand rather than by a schema library,
 * and each failure names the field that is wrong.
 */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export type Json = Record<string, unknown>;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function reqString(o: Json, field: string, max = 256): string {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0) throw new FieldError(field, 'must be a non-empty string');
  if (v.length > max) throw new FieldError(field, `must be at most ${max} characters`);
  return v;
}

export function optString(o: Json, field: string, max = 256): string | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new FieldError(field, 'must be a string');
  if (v.length > max) throw new FieldError(field, `must be at most ${max} characters`);
  return v === '' ? null : v;
}

export function optNumber(o: Json, field: string, min = 0): number | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(field, 'must be a finite number');
  if (v < min) throw new FieldError(field, `must be at least ${min}`);
  return v;
}

export function optBoolean(o: Json, field: string): boolean | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') throw new FieldError(field, 'must be true or false');
  return v;
}

export function optEnum<T extends string>(o: Json, field: string, values: readonly T[]): T | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw new FieldError(field, `must be one of ${values.join(', ')}`);
  }
  return v as T;
}

export function reqEnum<T extends string>(o: Json, field: string, values: readonly T[]): T {
  const v = optEnum(o, field, values);
  if (v === null) throw new FieldError(field, `is required: one of ${values.join(', ')}`);
  return v;
}

/** RFC 3339 time to epoch ms. */
export function reqTime(o: Json, field: string): number {
  const v = o[field];
  if (typeof v !== 'string' || !RFC3339.test(v)) {
    throw new FieldError(field, 'must be an RFC 3339 time such as 2026-11-01T12:00:00Z');
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new FieldError(field, 'is not a valid date');
  return t;
}

export function optTags(o: Json, field: string): Record<string, string> {
  const v = o[field];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new FieldError(field, 'must be an object of string values');
  let n = 0;
  for (const k in v) {
    if (typeof v[k] !== 'string') throw new FieldError(`${field}.${k}`, 'must be a string');
    if (++n > 64) throw new FieldError(field, 'must have at most 64 entries');
  }
  return v as Record<string, string>;
}

export function optStringArray(o: Json, field: string, maxItems = 1000): string[] {
  const v = o[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > maxItems || v.some((x) => typeof x !== 'string' || x === '')) {
    throw new FieldError(field, `must be an array of at most ${maxItems} non-empty strings`);
  }
  return v as string[];
}
