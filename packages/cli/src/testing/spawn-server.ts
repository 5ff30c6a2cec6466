import { type ChildProcess, spawn } from 'node:child_process';
import { delimiter, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TALLY_BIN = fileURLToPath(new URL('../../bin/tally.js', import.meta.url));

export { freePort } from '@tally/gateway/testing';

export interface Spawned {
  child: ChildProcess;
  output(): string;
}

/** Runs `tally <args>` as a real process; resolves once its output matches `ready`. With
 * `asInstalled`, the binary is run as a user's shell runs it, through its first line (with this
 * Node first on the PATH), and not as a script given to this Node. */
export function spawnTally(
  args: string[],
  env: Record<string, string>,
  ready = /listening on/,
  { asInstalled = false }: { asInstalled?: boolean } = {},
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const [command, argv, path] = asInstalled
      ? [TALLY_BIN, args, { PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}` }]
      : [process.execPath, [TALLY_BIN, ...args], {}];
    const child = spawn(command, argv, {
      env: { ...process.env, ...path, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not ready: ${out}`)), 20_000);
    const check = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({ child, output: () => out });
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`tally exited (${code ?? signal}): ${out}`));
    });
  });
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
