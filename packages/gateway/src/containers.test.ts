import { describe, expect, it } from 'vitest';
import { codeInterpreterOf, containerHeld, containersOf, withContainerSessions } from './containers.js';
import { MemoryState } from './state/memory-state.js';

const tool = (container: unknown) => ({
  tools: [{ type: 'web_search' }, { type: 'code_interpreter', container }],
});
const used = (...ids: string[]) =>
  ids.map((container_id) => ({ type: 'code_interpreter_call', container_id }));

describe('the code interpreter a request offers', () => {
  it('names its container, or the memory of one made for it', () => {
    expect(codeInterpreterOf(tool('cntr_own'))).toEqual({ named: 'cntr_own', kind: 'code_containers' });
    expect(codeInterpreterOf(tool({ type: 'auto' }))).toEqual({ named: null, kind: 'code_containers' });
    expect(codeInterpreterOf(tool({ type: 'auto', memory_limit: '4g' }))?.kind).toBe('code_containers_4g');
    expect(codeInterpreterOf(tool({ type: 'auto', memory_limit: '64G' }))?.kind).toBe('code_containers_64g');
    expect(codeInterpreterOf({ tools: [{ type: 'web_search' }] })).toBeNull();
    expect(codeInterpreterOf({})).toBeNull();
  });

  it('holds one session for a budget when a container is made for it, none for its own', () => {
    expect(containerHeld(tool({ type: 'auto', memory_limit: '16g' }))).toEqual({ code_containers_16g: 1 });
    expect(containerHeld(tool({ type: 'auto' }))).toEqual({ code_containers: 1 });
    expect(containerHeld(tool('cntr_own'))).toBeNull();
    expect(containerHeld({ tools: [] })).toBeNull();
  });

  it('lists the containers an answer used once each', () => {
    expect(containersOf([...used('a', 'b', 'a'), { type: 'message' }])).toEqual(['a', 'b']);
    expect(containersOf([{ type: 'message' }])).toBeNull();
    // No id past 256 characters, and no more than sixteen: each is a look in the shared state.
    expect(containersOf(used('x'.repeat(257), 'ok'))).toEqual(['ok']);
    const many = Array.from({ length: 40 }, (_, i) => `c${i}`);
    expect(containersOf(used(...many))).toEqual(many.slice(0, 16));
    expect(containersOf('x')).toBeNull();
  });
});

describe('the container sessions a call is billed', () => {
  it("bills each container the tenant's gateway sees first, once, across calls", async () => {
    const state = new MemoryState();
    const body = tool({ type: 'auto' });
    const first = await withContainerSessions(state, 't1', body, ['cntr_1'], { web_searches: 2 }, 0);
    expect(first).toEqual({ web_searches: 2, code_containers: 1 });
    // The next call of the conversation uses the same container: not billed again.
    expect(await withContainerSessions(state, 't1', body, ['cntr_1'], null, 1000)).toBeNull();
    // Another tenant's call is its own.
    expect(await withContainerSessions(state, 't2', body, ['cntr_1'], null, 1000)).toEqual({
      code_containers: 1,
    });
    // Two new ones, at the memory the request asks for; the searches given are not changed.
    const searches = { web_searches: 1 };
    const big = await withContainerSessions(
      state,
      't1',
      tool({ type: 'auto', memory_limit: '4g' }),
      ['cntr_2', 'cntr_3', 'cntr_1'],
      searches,
      2000,
    );
    expect(big).toEqual({ web_searches: 1, code_containers_4g: 2 });
    expect(searches).toEqual({ web_searches: 1 });
  });

  it('bills a container the shared state cannot answer for, and says so, rather than lose the call', async () => {
    const down = new MemoryState();
    down.once = () => Promise.reject(new Error('redis down'));
    const failures: unknown[] = [];
    const body = tool({ type: 'auto' });
    expect(
      await withContainerSessions(down, 't', body, ['cntr_1'], null, 0, (e) => failures.push(e)),
    ).toEqual({
      code_containers: 1,
    });
    expect(failures).toHaveLength(1);
    // The container the request names needs no look.
    expect(await withContainerSessions(down, 't', tool('cntr_own'), ['cntr_own'], null, 0)).toBeNull();
  });

  it('bills none for the container the request names, made and billed apart', async () => {
    const state = new MemoryState();
    expect(await withContainerSessions(state, 't', tool('cntr_own'), ['cntr_own'], null, 0)).toBeNull();
    // A container an answer used that the request did not offer a tool for is the default's.
    expect(await withContainerSessions(state, 't', {}, ['cntr_x'], null, 0)).toEqual({ code_containers: 1 });
  });
});
