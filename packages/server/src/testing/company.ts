import type { SimCompany } from '@tally/core';
import type { TestApp } from './test-app.js';

/** Loads a simulated company through the public API, as an app would send it. */
export async function loadCompany(t: TestApp, company: SimCompany): Promise<void> {
  for (const uc of company.useCases) {
    const { stage: _stage, ...register } = uc.register;
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/use-cases',
      headers: t.auth,
      payload: register,
    });
    if (res.statusCode !== 201) throw new Error(res.body);
    for (const e of uc.ledger) {
      await t.app.inject({
        method: 'POST',
        url: '/v1/ledger',
        headers: t.auth,
        payload: { use_case: uc.register.id, ...e },
      });
    }
  }
  for (let i = 0; i < company.events.length; i += 1000) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: t.auth,
      payload: { events: company.events.slice(i, i + 1000) },
    });
    const body = res.json();
    if (body.rejected?.length) throw new Error(JSON.stringify(body.rejected.slice(0, 3)));
  }
}
