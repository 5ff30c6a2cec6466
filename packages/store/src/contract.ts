import { afterAll, beforeAll, describe } from 'vitest';
import { callQueryCases } from './contract/call-query-cases.js';
import { ingestCases } from './contract/ingest-cases.js';
import { isolationCases } from './contract/isolation-cases.js';
import { lifecycleCases } from './contract/lifecycle-cases.js';
import { outcomeCases } from './contract/outcome-cases.js';
import { registryCases } from './contract/registry-cases.js';
import { spendCases } from './contract/spend-cases.js';
import type { Store } from './store.js';

/** What each group of contract cases gets: the store under test, and a way to make another. */
export interface ContractContext {
  readonly store: Store;
  readonly makeStore: () => Promise<Store>;
}

/**
 * The behaviour every Store adapter must have, tested through the interface only, so that each
 * adapter runs this same suite: `runStoreContract('duckdb', () => createDuckDbStore(...))`.
 * One store serves the suite; every test writes into tenants of its own, so the suite also runs
 * against a database that other tests share.
 */
export function runStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store | null = null;
    const ctx: ContractContext = {
      get store(): Store {
        if (!store) throw new Error('the contract store is not open');
        return store;
      },
      makeStore,
    };
    beforeAll(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterAll(async () => {
      await store?.close();
    });

    describe('lifecycle', () => lifecycleCases(ctx));
    describe('ingest', () => ingestCases(ctx));
    describe('calls and task events', () => callQueryCases(ctx));
    describe('spend', () => spendCases(ctx));
    describe('register, ledger, budgets and keys', () => registryCases(ctx));
    describe('outcome sums', () => outcomeCases(ctx));
    describe('tenant isolation', () => isolationCases(ctx));
  });
}
