import { TallyError } from '@tally/core';

/** The most rows one page may hold. */
export const MAX_PAGE_LIMIT = 1000;

/** A page size from 1 to MAX_PAGE_LIMIT; larger asks are capped. */
export function pageLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new TallyError('invalid_query', `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}.`);
  }
  return Math.min(limit, MAX_PAGE_LIMIT);
}

/** Throws invalid_query unless the name is an IANA time zone. */
export function checkTimeZone(timeZone: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw new TallyError('invalid_query', `"${timeZone}" is not an IANA time zone.`);
  }
  return timeZone;
}
