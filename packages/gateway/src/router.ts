import type { Endpoint } from './providers.js';
import type { GatewayConfig, ProviderConfig, RouteConfig, Target } from './types.js';
import type { StandIn } from './upstream-answer.js';

export interface Attempt {
  provider: ProviderConfig;
  /** The model to ask this provider for. */
  model: string;
  /** 'primary' for the weighted targets, 'fallback' after them; 'downgrade' for the targets of the
   * cheaper model an exhausted budget sent the call to; 'context_fallback' for the models a route
   * sends a prompt too long for its model to, 'policy_fallback' for those it sends a request a
   * content filter refused to (stand-ins: last in a plan, and tried only then). */
  tier: 'primary' | 'fallback' | 'downgrade' | StandIn;
  /** Its route's `retries`, where it sets them (or the request's own). */
  retries?: number;
  /** The request's own per-attempt timeout, ms, where it asks one (else its provider's). */
  timeoutMs?: number;
  /** Its target's quota (requests and tokens a minute), where it sets one. */
  quota?: { rpm: number | null; tpm: number | null };
}

/**
 * Decides where a call goes. A configured route gives weighted targets (one is picked by weight,
 * the others follow as alternatives) and then its fallbacks in order. Without a route, a
 * `provider/model` prefix names the provider; otherwise the model's family picks one (claude ->
 * an Anthropic provider, gemini -> a provider named gemini), and the first OpenAI-style provider
 * takes the rest.
 */
export class Router {
  /** Providers from config serve every tenant; those added through the API serve their tenant. */
  private readonly providers = new Map<string, ProviderConfig>();
  private readonly byTenant = new Map<string, Map<string, ProviderConfig>>();
  private readonly routes = new Map<string, RouteConfig>();

  constructor(
    config: GatewayConfig,
    private readonly random: () => number = Math.random,
  ) {
    for (const p of config.providers) {
      if (p.tenant === undefined) {
        this.providers.set(p.id, p);
        continue;
      }
      let m = this.byTenant.get(p.tenant);
      if (!m) {
        m = new Map();
        this.byTenant.set(p.tenant, m);
      }
      m.set(p.id, p);
    }
    for (const r of config.routes) this.routes.set(r.model, r);
  }

  provider(id: string, tenant?: string): ProviderConfig | undefined {
    return (tenant === undefined ? undefined : this.byTenant.get(tenant)?.get(id)) ?? this.providers.get(id);
  }

  get providerList(): ProviderConfig[] {
    return [...this.providers.values()];
  }

  get routeNames(): string[] {
    return [...this.routes.keys()];
  }

  /** The targets of the routes that set a quota, as attempts on the config's providers (one for
   * each provider and model, the first that sets one). */
  get quotaTargets(): Attempt[] {
    const out = new Map<string, Attempt>();
    for (const r of this.routes.values()) {
      for (const t of targetsOf(r)) {
        const p = this.providers.get(t.provider);
        const model = t.model ?? r.model;
        const quota = quotaOf(t);
        if (!p || !quota || out.has(`${p.id}/${model}`)) continue;
        out.set(`${p.id}/${model}`, { provider: p, model, tier: 'primary', quota });
      }
    }
    return [...out.values()];
  }

  /** The providers a route names that neither the config nor (with a tenant) the tenant's own
   * providers hold: each route's, or one model's. */
  missingProviders(model?: string, tenant?: string): string[] {
    const routes =
      model === undefined
        ? [...this.routes.values()]
        : [this.routes.get(model)].filter((r) => r !== undefined);
    const missing = new Set<string>();
    for (const r of routes) {
      for (const t of targetsOf(r)) {
        if (this.provider(t.provider, tenant) === undefined) missing.add(t.provider);
      }
    }
    return [...missing];
  }

  plan(model: string, endpoint: Endpoint, tenant?: string): Attempt[] {
    const route = this.routes.get(model);
    if (route) return this.fromRoute(route, model, tenant);
    const slash = model.indexOf('/');
    if (slash > 0) {
      const p = this.provider(model.slice(0, slash), tenant);
      if (p) return [{ provider: p, model: model.slice(slash + 1), tier: 'primary' }];
    }
    const p = this.inferProvider(model, endpoint, tenant);
    return p ? [{ provider: p, model, tier: 'primary' }] : [];
  }

  private fromRoute(route: RouteConfig, model: string, tenant: string | undefined): Attempt[] {
    const out: Attempt[] = [];
    const targets = route.targets.filter((t) => this.provider(t.provider, tenant) !== undefined);
    const first = this.pickWeighted(targets);
    const ordered = first ? [first, ...targets.filter((t) => t !== first)] : [];
    const push = (t: Target, tier: Attempt['tier']) => {
      const p = this.provider(t.provider, tenant);
      if (!p) return;
      const a: Attempt = { provider: p, model: t.model ?? model, tier };
      if (route.retries !== undefined) a.retries = route.retries;
      const quota = quotaOf(t);
      if (quota) a.quota = quota;
      out.push(a);
    };
    for (const t of ordered) push(t, 'primary');
    for (const t of route.fallbacks ?? []) push(t, 'fallback');
    // A stand-in stands in for none of the route's own: with none of them, no plan.
    if (out.length === 0) return out;
    for (const t of route.context_fallbacks ?? []) push(t, 'context_fallback');
    for (const t of route.content_policy_fallbacks ?? []) push(t, 'policy_fallback');
    return out;
  }

  private pickWeighted(targets: Target[]): Target | undefined {
    if (targets.length <= 1) return targets[0];
    const total = targets.reduce((n, t) => n + (t.weight ?? 1), 0);
    let r = this.random() * total;
    for (const t of targets) {
      r -= t.weight ?? 1;
      if (r < 0) return t;
    }
    return targets[targets.length - 1];
  }

  /** The providers a tenant's calls may reach: those from config first, then its own. A model
   * that names no provider goes to the first that fits, so adding a provider through the API never
   * takes over the traffic the config already routes (a `provider/model` prefix reaches it). */
  providersFor(tenant: string | undefined): ProviderConfig[] {
    const own = tenant === undefined ? [] : [...(this.byTenant.get(tenant)?.values() ?? [])];
    return [...this.providerList, ...own];
  }

  private inferProvider(
    model: string,
    endpoint: Endpoint,
    tenant: string | undefined,
  ): ProviderConfig | undefined {
    const list = this.providersFor(tenant);
    const anthropic = list.find((p) => p.kind === 'anthropic');
    if (anthropic && /^claude/i.test(model)) return anthropic;
    if (/^gemini/i.test(model)) {
      const gemini = list.find((p) => p.id === 'gemini' || p.price_provider === 'google');
      if (gemini) return gemini;
    }
    const openai = list.find((p) => p.kind === 'openai');
    // Anthropic's API goes to Anthropic, unless the model is OpenAI's: that call is translated.
    // A name no provider is known for goes to Anthropic, which says whether it has the model.
    if (endpoint === 'messages' && anthropic && !(openai && OPENAI_MODEL.test(model))) return anthropic;
    return openai ?? list.find((p) => p.kind !== 'anthropic');
  }
}

/** Names of OpenAI's models: GPT, the o-series reasoning models, and ChatGPT's. */
const OPENAI_MODEL = /^(gpt-|o\d|chatgpt-|codex-)/i;

/** Whether an attempt is one of a route's stand-ins (for a prompt too long for its model, or a
 * request a content filter refused), tried only then. */
export const isStandIn = (a: Attempt): a is Attempt & { tier: StandIn } =>
  a.tier === 'context_fallback' || a.tier === 'policy_fallback';

/** A target's quota, where it sets one. */
const quotaOf = (t: Target): Attempt['quota'] =>
  t.rpm === undefined && t.tpm === undefined ? undefined : { rpm: t.rpm ?? null, tpm: t.tpm ?? null };

/** Every target a route names: its own, its fallbacks and its stand-ins. */
const targetsOf = (r: RouteConfig): Target[] => [
  ...r.targets,
  ...(r.fallbacks ?? []),
  ...(r.context_fallbacks ?? []),
  ...(r.content_policy_fallbacks ?? []),
];
