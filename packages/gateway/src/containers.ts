import { type HostedToolCall, type HostedToolCalls, isObject } from '@tally/core';
import type { SharedState } from './state/shared-state.js';

/**
 * OpenAI's code interpreter runs in a container, billed per session of it whatever the model, at
 * a fee by its memory (1 GB unless the request asks for more). A Responses request names a
 * container it made itself (`container: "cntr_…"`, through the containers API, billed there), or
 * lets one be made for it (`container: {"type": "auto", "memory_limit": "4g"}`), which a later
 * call of the same conversation may use again while it lives. So a call is billed each container
 * its answer used that the gateway has not seen before, of the tenant's, and that the request did
 * not name.
 */

/** What a container session counts as, by the memory asked for. */
const BY_MEMORY: Readonly<Record<string, HostedToolCall>> = {
  '1g': 'code_containers',
  '4g': 'code_containers_4g',
  '16g': 'code_containers_16g',
  '64g': 'code_containers_64g',
};

/** How long a container id is remembered as billed. A container lives while it is used (it
 * expires after 20 minutes idle): a day covers any that is still used, and the shared state keeps
 * the mark a day longer. */
const SEEN_FOR_MS = 86_400_000;

interface CodeInterpreter {
  /** The container the request names, made apart; null for one made for it. */
  named: string | null;
  /** What a session of a container made for it counts as. */
  kind: HostedToolCall;
}

/** The code interpreter a Responses request offers, or null when it offers none. */
export function codeInterpreterOf(body: Record<string, unknown>): CodeInterpreter | null {
  const tools = body['tools'];
  if (!Array.isArray(tools)) return null;
  for (const t of tools) {
    if (!isObject(t) || t['type'] !== 'code_interpreter') continue;
    const c = t['container'];
    if (typeof c === 'string') return { named: c, kind: 'code_containers' };
    const memory = isObject(c) ? c['memory_limit'] : undefined;
    const kind = typeof memory === 'string' ? BY_MEMORY[memory.toLowerCase()] : undefined;
    return { named: null, kind: kind ?? 'code_containers' };
  }
  return null;
}

/** The container session a Responses request may start, for its budget reservation: one, of the
 * memory it asks for, when it lets a container be made for it. */
export function containerHeld(body: Record<string, unknown>): HostedToolCalls | null {
  const ci = codeInterpreterOf(body);
  return ci && ci.named === null ? { [ci.kind]: 1 } : null;
}

/** The most containers one answer is read for: one is the rule (a call's code interpreter calls
 * share a container), and each costs a look in the shared state. */
const MOST_CONTAINERS = 16;
/** The longest container id taken (OpenAI's are `cntr_` and 48 characters or so). */
const MOST_ID_CHARS = 256;

/** The container ids of an answer's code interpreter calls, each once, added to `ids`. An id that
 * is no id (empty, or longer than any), and any past the sixteenth, are left out. */
export function addContainer(ids: string[] | null, item: unknown): string[] | null {
  if (!isObject(item) || item['type'] !== 'code_interpreter_call') return ids;
  const id = item['container_id'];
  if (typeof id !== 'string' || id === '' || id.length > MOST_ID_CHARS || ids?.includes(id)) return ids;
  if ((ids?.length ?? 0) >= MOST_CONTAINERS) return ids;
  const out = ids ?? [];
  out.push(id);
  return out;
}

/** The container ids a Responses answer's `output` used, or null for none. */
export function containersOf(output: unknown): string[] | null {
  if (!Array.isArray(output)) return null;
  let ids: string[] | null = null;
  for (const item of output) ids = addContainer(ids, item);
  return ids;
}

/**
 * The container sessions a call is billed (see above) for the containers its answer used, added
 * to `calls`: each the tenant's gateway has not seen before (across replicas, with the shared
 * state) and the request did not name. A container the shared state cannot answer for (Redis out
 * of reach) is billed, as one seen first, and `failed` told: the call is recorded either way, at
 * what it may have cost rather than less.
 */
export async function withContainerSessions(
  state: SharedState,
  tenant: string,
  body: Record<string, unknown>,
  ids: readonly string[],
  calls: HostedToolCalls | null,
  now: number,
  failed?: (err: unknown) => void,
): Promise<HostedToolCalls | null> {
  const ci = codeInterpreterOf(body);
  const kind = ci?.kind ?? 'code_containers';
  const firsts = await Promise.all(
    ids.map((id) =>
      id === ci?.named
        ? false
        : state.once(`container\u0000${tenant}\u0000${id}`, now + SEEN_FOR_MS).catch((err: unknown) => {
            failed?.(err);
            return true;
          }),
    ),
  );
  const made = firsts.filter(Boolean).length;
  return made === 0 ? calls : { ...calls, [kind]: (calls?.[kind] ?? 0) + made };
}
