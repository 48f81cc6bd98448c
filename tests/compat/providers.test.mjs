// SPDX-License-Identifier: MIT
// The official openai SDK through the native Gemini adapter and a
// DeepSeek-style provider: to the SDK every model must look like OpenAI's,
// text, reasoning, usage, streaming, errors and tool calls included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.LB_BASE_URL,
  apiKey: process.env.LB_CLIENT_KEY,
  maxRetries: 0,
});
const mockURL = process.env.LB_MOCK_URL;
const lastRequest = async () => (await (await fetch(mockURL + '/_mock/stats')).json()).last_request;

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    },
  },
}];

for (const model of ['gem/gemini-2.5-flash', 'deep/deepseek-chat']) {
  test(`${model}: a completion`, async () => {
    const r = await client.chat.completions.create({
      model,
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi [mock chunks=3]' }],
    });
    assert.equal(r.model, model);
    assert.equal(r.choices[0].message.content, 'tok0 tok1 tok2 ');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.total_tokens > 0);
  });

  test(`${model}: a stream with reasoning and usage`, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'hi [mock chunks=4 reasoning=1]' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '', reasoning = '', usage = null, finish = null;
    for await (const chunk of stream) {
      assert.equal(chunk.model, model);
      const d = chunk.choices[0]?.delta ?? {};
      text += d.content ?? '';
      reasoning += d.reasoning_content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 ');
    assert.equal(reasoning, 'think ');
    assert.equal(finish, 'stop');
    assert.ok(usage && usage.completion_tokens > 0);
  });

  test(`${model}: a two-turn tool-call conversation`, async () => {
    const messages = [{ role: 'user', content: 'weather in Paris? [mock tools=1]' }];
    const first = await client.chat.completions.create({ model, messages, tools });
    const msg = first.choices[0].message;
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 1);
    const call = msg.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.match(call.id, /^call_/);
    messages.push(msg, { role: 'tool', tool_call_id: call.id, content: '{"sky":"sunny"}' });
    const second = await client.chat.completions.create({ model, messages, tools });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.ok(second.choices[0].message.content.length > 0);
    const up = JSON.parse((await lastRequest()).body);
    if (model.startsWith('gem/')) {
      // the call and its answer went back as native parts, the thought
      // signature included, and the schema without what Gemini rejects
      const parts = up.contents.flatMap((c) => c.parts);
      const fc = parts.find((p) => p.functionCall);
      assert.equal(fc.functionCall.name, 'get_weather');
      assert.equal(fc.thoughtSignature, 'c2lnbmF0dXJl');
      assert.ok(parts.some((p) => p.functionResponse?.name === 'get_weather'));
      const params = JSON.stringify(up.tools);
      assert.ok(!params.includes('additionalProperties') && !params.includes('$schema'), params);
      assert.equal(up.systemInstruction, undefined);
    } else {
      assert.equal(up.messages[2].role, 'tool');
    }
  });

  test(`${model}: a streamed tool call keeps its arguments whole`, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'weather? [mock tools=1]' }],
      tools,
      stream: true,
    });
    let args = '', name = '', finish = null;
    for await (const chunk of stream) {
      const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
      if (tc?.function?.name) name = tc.function.name;
      args += tc?.function?.arguments ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(finish, 'tool_calls');
  });

  test(`${model}: provider errors keep their meaning`, async () => {
    await assert.rejects(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: '[mock status=429 retry_after=3]' }] }),
      (e) => e instanceof OpenAI.RateLimitError && e.headers['retry-after'] === '3',
    );
    await assert.rejects(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: '[mock status=400]' }] }),
      (e) => e instanceof OpenAI.BadRequestError && /mock error 400/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: '[mock status=503]' }], stream: true }),
      (e) => e instanceof OpenAI.InternalServerError && e.status === 502,
    );
  });
}

test('gemini: the key goes in x-goog-api-key, never in the URL', async () => {
  await client.chat.completions.create({ model: 'gem/gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] });
  const req = await lastRequest();
  assert.equal(req.headers['x-goog-api-key'], 'sk-compat-gemini');
  assert.ok(!req.path.includes('sk-compat') && !req.path.includes('key='));
  assert.match(req.path, /\/v1beta\/models\/gemini-2\.5-flash:generateContent$/);
  assert.equal(req.headers.authorization, undefined);
});

test('gemini: a refused key is a 502 naming the provider key, malformed calls are errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gem/gemini-2.5-flash', messages: [{ role: 'user', content: '[mock badkey=1]' }] }),
    (e) => e.status === 502 && e.code === 'upstream_auth_failed',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'gem/gemini-2.5-flash', messages: [{ role: 'user', content: '[mock malformed=1]' }] }),
    (e) => e.status === 502,
  );
  const blocked = await client.chat.completions.create({
    model: 'gem/gemini-2.5-flash', messages: [{ role: 'user', content: '[mock blocked=1]' }],
  });
  assert.equal(blocked.choices[0].finish_reason, 'content_filter');
});

test('deepseek: cache hits appear as prompt_tokens_details.cached_tokens', async () => {
  const r = await client.chat.completions.create({
    model: 'deep/deepseek-chat', messages: [{ role: 'user', content: 'hi [mock cached=6]' }],
  });
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, 6);
  assert.equal(r.usage.prompt_cache_hit_tokens, 6);
});
