import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { upstreamUrl } from './realtime.js';
import type { ProviderConfig } from './types.js';

const req = (headers: Record<string, string> = {}) => ({ headers }) as unknown as IncomingMessage;

describe('where a realtime session goes', () => {
  it("dials OpenAI's and any OpenAI-style provider's /realtime with the model in the query, and its key", () => {
    const openai: ProviderConfig = {
      id: 'openai',
      kind: 'openai',
      base_url: 'https://api.openai.com/v1',
      api_key: 'sk-1',
      organization: 'org-1',
    };
    expect(upstreamUrl(openai, 'gpt-realtime', req({ 'openai-beta': 'realtime=v1' }))).toEqual({
      url: 'wss://api.openai.com/v1/realtime?model=gpt-realtime',
      headers: { authorization: 'Bearer sk-1', 'openai-organization': 'org-1', 'openai-beta': 'realtime=v1' },
    });
    const local: ProviderConfig = {
      id: 'vllm',
      kind: 'openai-compatible',
      base_url: 'http://10.0.0.5:8000/v1',
    };
    expect(upstreamUrl(local, 'my model', req()).url).toBe('ws://10.0.0.5:8000/v1/realtime?model=my%20model');
    // A transcription session names no model.
    expect(upstreamUrl(openai, 'gpt-4o-transcribe', req(), true).url).toBe(
      'wss://api.openai.com/v1/realtime?intent=transcription',
    );
  });

  it("dials Azure's v1 API with the deployment as the model, and its dated versions as Azure names them", () => {
    const v1: ProviderConfig = {
      id: 'az',
      kind: 'azure',
      base_url: 'https://acme.openai.azure.com',
      api_key: 'az-key',
      api_version: 'v1',
      deployments: { 'gpt-realtime': 'rt-prod' },
    };
    expect(upstreamUrl(v1, 'gpt-realtime', req())).toEqual({
      url: 'wss://acme.openai.azure.com/openai/v1/realtime?model=rt-prod',
      headers: { 'api-key': 'az-key' },
    });
    const dated = { ...v1, api_version: '2025-04-01-preview' };
    expect(upstreamUrl(dated, 'gpt-realtime', req()).url).toBe(
      'wss://acme.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt-prod',
    );
  });
});
