import { isTallyError } from '@tally/core';

/** Prints an error for a person: code, message and hint; the stack only with --debug. */
export function printError(
  err: unknown,
  debug: boolean,
  write: (s: string) => void = (s) => process.stderr.write(s),
): number {
  if (isTallyError(err)) {
    write(`error [${err.code}]: ${err.message}\n`);
    const checks = (
      err.details as { checks?: { check: string; passed: boolean; detail: string }[] } | undefined
    )?.checks;
    for (const c of checks ?? []) write(`  ${c.passed ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}\n`);
    write(`  hint: ${err.hint}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    return 1;
  }
  const e = err as { code?: string; message?: string; stack?: string } | undefined;
  if (e?.code === 'EADDRINUSE') {
    write(`error [address_in_use]: ${e.message}\n  hint: Another process holds that port; pass --port.\n`);
    return 1;
  }
  write(
    `error [internal]: ${e?.message ?? String(err)}\n  hint: Run again with --debug and report the stack trace.\n`,
  );
  if (debug && e?.stack) write(`${e.stack}\n`);
  return 1;
}
