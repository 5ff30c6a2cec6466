import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@tally/core': src('core'),
      '@tally/store': src('store'),
      '@tally/gateway/testing': fileURLToPath(
        new URL('./packages/gateway/src/testing/index.ts', import.meta.url),
      ),
      '@tally/gateway': src('gateway'),
      '@tally/server/config': fileURLToPath(new URL('./packages/server/src/config.ts', import.meta.url)),
      '@tally/server/replica': fileURLToPath(new URL('./packages/server/src/replica.ts', import.meta.url)),
      '@tally/server': src('server'),
      '@tally/sdk': src('sdk'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'bench/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
