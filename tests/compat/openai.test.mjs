// SPDX-License-Identifier: MIT
// The official openai SDK against llm-bridge (which run-compat.sh started in
// front of the mock upstream): what SDK users do every day must just work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.LB_BASE_URL;
const apiKey = process.env.LB_CLIENT_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

test('lists the configured models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('mock/gpt-test'), ids.join(','));
  assert.ok(ids.every((id) => id.includes('/')));
});

test('retrieves one model, and 404s an unknown one', async () => {
  const m = await client.models.retrieve('mock/gpt-test');
  assert.equal(m.id, 'mock/gpt-test');
  assert.equal(m.object, 'model');
  assert.equal(m.owned_by, 'mock');
  await assert.rejects(client.models.retrieve('mock/no-such-model'), (e) =>
    e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
});

test('a completion', async () => {
  const r = await client.chat.completions.create({
    model: 'mock/gpt-test',
    messages: [{ role: 'user', content: 'hello [mock chunks=3]' }],
  });
  assert.equal(r.model, 'mock/gpt-test');
  assert.equal(r.choices[0].message.content, 'tok0 tok1 tok2 ');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.completion_tokens, 3);
});

test('a stream assembled from chunks', async () => {
  const stream = await client.chat.completions.create({
    model: 'mock/gpt-test',
    messages: [{ role: 'user', content: 'hello [mock chunks=5]' }],
    stream: true,
  });
  let text = '';
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.model, 'mock/gpt-test');
    assert.equal(chunk.usage ?? null, null);
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
  assert.equal(finish, 'stop');
  assert.equal(chunks, 7);
});

test('a stream with include_usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'mock/gpt-test',
    messages: [{ role: 'user', content: 'hello [mock chunks=2]' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let usage = null;
  for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
  assert.ok(usage);
  assert.equal(usage.completion_tokens, 2);
  assert.equal(usage.total_tokens, usage.prompt_tokens + 2);
});

test('the SDK stream helper and finalChatCompletion', async () => {
  const runner = client.beta?.chat?.completions?.stream
    ? client.beta.chat.completions.stream({
        model: 'mock/gpt-test',
        messages: [{ role: 'user', content: 'hi [mock chunks=4]' }],
      })
    : null;
  if (!runner) return;
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, 'tok0 tok1 tok2 tok3 ');
});

test('a wrong key is an AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-not-a-valid-key', maxRetries: 0 });
  await assert.rejects(
    bad.chat.completions.create({
      model: 'mock/gpt-test',
      messages: [{ role: 'user', content: 'hi' }],
    }),
    (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.code, 'invalid_api_key');
      return true;
    },
  );
});

test('an unknown model is a NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'nope/none',
      messages: [{ role: 'user', content: 'hi' }],
    }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      return true;
    },
  );
});

test('an upstream 429 is a RateLimitError', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'mock/gpt-test',
      messages: [{ role: 'user', content: '[mock status=429 retry_after=1]' }],
    }),
    (err) => err instanceof OpenAI.RateLimitError && err.status === 429,
  );
});

test('a stream cut short raises instead of ending quietly', async () => {
  const stream = await client.chat.completions.create({
    model: 'mock/gpt-test',
    messages: [{ role: 'user', content: '[mock chunks=5 close=midstream after=2]' }],
    stream: true,
  });
  await assert.rejects(async () => {
    for await (const chunk of stream) void chunk;
  });
});
