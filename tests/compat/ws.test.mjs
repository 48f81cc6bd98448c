// SPDX-License-Identifier: MIT
// /v1/ws driven by the `ws` package, a real WebSocket client: the original's
// protocol byte for byte, and the additions (ids, cancel, ping, auth,
// non-streaming replies), bad input, and disconnect-abort at the mock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const wsURL = process.env.LB_BASE_URL.replace(/^http/, 'ws').replace(/\/v1$/, '') + '/v1/ws';
const key = process.env.LB_CLIENT_KEY;
const mockURL = process.env.LB_MOCK_URL;

// A socket with a message queue: next() resolves with the next text message.
function open(opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsURL, opts);
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { text: data.toString(), isBinary };
      const w = waiters.shift();
      if (w) w(m); else queue.push(m);
    });
    ws.next = (ms = 5000) => new Promise((res, rej) => {
      if (queue.length) return res(queue.shift());
      const t = setTimeout(() => rej(new Error('no message within ' + ms + ' ms')), ms);
      waiters.push((m) => { clearTimeout(t); res(m); });
    });
    ws.closed = new Promise((res) => ws.on('close', (code) => res(code)));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('unexpected-response', (req, res) => reject(new Error('HTTP ' + res.statusCode)));
  });
}

const chat = (content, extra = {}) => ({
  model: 'mock/gpt-test',
  messages: [{ role: 'user', content }],
  ...extra,
});

// Messages of an id-less (original framing) stream, up to data: [DONE].
async function seedStream(ws) {
  const frames = [];
  for (;;) {
    const m = await ws.next();
    frames.push(m.text);
    if (m.text === 'data: [DONE]\n\n') return frames;
  }
}

async function mockStats() {
  return (await fetch(mockURL + '/_mock/stats')).json();
}

test("the original's example message, answered in its framing", async () => {
  const ws = await open();
  ws.send(JSON.stringify({
    type: 'chat',
    api_key: key,
    payload: { model: 'mock/gpt-test', messages: [{ role: 'user', content: 'Hello [mock chunks=3]' }] },
  }));
  const frames = await seedStream(ws);
  assert.ok(frames.every((f) => f.startsWith('data: ') && f.endsWith('\n\n')));
  const chunks = frames.slice(0, -1).map((f) => JSON.parse(f.slice(6)));
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'tok0 tok1 tok2 ');
  assert.ok(chunks.every((c) => c.model === 'mock/gpt-test' && c.object === 'chat.completion.chunk'));
  ws.close();
});

test("'Bearer ' before the key is accepted, as the original does", async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'chat', api_key: 'Bearer ' + key, payload: chat('hi [mock chunks=1]') }));
  const frames = await seedStream(ws);
  assert.ok(!frames.some((f) => f.includes('"error"')), frames.join(''));
  ws.close();
});

test('id-less requests on one socket are answered one after the other', async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'chat', api_key: key, payload: chat('[mock chunks=3 interval_ms=30]') }));
  ws.send(JSON.stringify({ type: 'chat', api_key: key, payload: chat('[mock chunks=2]') }));
  const first = await seedStream(ws);
  const second = await seedStream(ws);
  const text = (fr) => fr.slice(0, -1).map((f) => JSON.parse(f.slice(6)).choices[0]?.delta?.content ?? '').join('');
  assert.equal(text(first), 'tok0 tok1 tok2 ');
  assert.equal(text(second), 'tok0 tok1 ');
  ws.close();
});

test('concurrent requests with ids interleave and are routed by id', async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'auth', api_key: key }));
  assert.deepEqual(JSON.parse((await ws.next()).text), { type: 'auth', ok: true });
  ws.send(JSON.stringify({ type: 'chat', id: 'a', payload: chat('[mock chunks=6 interval_ms=40]') }));
  ws.send(JSON.stringify({ type: 'chat', id: 7, payload: chat('[mock chunks=6 interval_ms=40]') }));
  const text = { a: '', 7: '' };
  const order = [];
  const done = {};
  while (Object.keys(done).length < 2) {
    const m = JSON.parse((await ws.next()).text);
    assert.ok(m.id === 'a' || m.id === 7, JSON.stringify(m));
    order.push(m.id);
    if (m.type === 'chunk') text[m.id] += m.data.choices[0]?.delta?.content ?? '';
    else if (m.type === 'done') done[m.id] = m;
    else assert.fail('unexpected ' + JSON.stringify(m));
  }
  assert.equal(text.a, 'tok0 tok1 tok2 tok3 tok4 tok5 ');
  assert.equal(text[7], 'tok0 tok1 tok2 tok3 tok4 tok5 ');
  // interleaved, not one after the other
  const firstDone = order.findIndex((id, i) => i > 0 && id !== order[0]);
  assert.ok(firstDone > 0 && firstDone < order.length / 2, order.join(','));
  // usage is reported on completion
  assert.equal(done.a.usage.completion_tokens, 6);
  ws.close();
});

// Many sockets, several workers on each filling outboxes at once, and half
// of the sockets closed mid-stream: the service thread sends what the
// workers queue (it keeps a list of sockets with text waiting, which a
// closed socket must leave before it is freed), every request on an open
// socket arrives whole, and the daemon stays up.
test('many sockets streaming at once, half closed mid-stream', async () => {
  const sockets = await Promise.all(Array.from({ length: 24 }, () =>
    open({ headers: { Authorization: 'Bearer ' + key } })));
  const ids = ['x', 'y', 'z'];
  const want = Array.from({ length: 12 }, (_, i) => `tok${i} `).join('');
  const results = sockets.map(async (ws, n) => {
    for (const id of ids)
      ws.send(JSON.stringify({ type: 'chat', id, payload: chat('[mock chunks=12 interval_ms=10]') }));
    if (n % 2) {
      // close after a few messages, while all three are streaming
      for (let i = 0; i < 4 + (n % 5); i++) await ws.next();
      ws.terminate();
      return null;
    }
    const text = { x: '', y: '', z: '' };
    const done = new Set();
    while (done.size < ids.length) {
      const m = JSON.parse((await ws.next()).text);
      if (m.type === 'chunk') text[m.id] += m.data.choices[0]?.delta?.content ?? '';
      else if (m.type === 'done') done.add(m.id);
      else assert.fail('unexpected ' + JSON.stringify(m));
    }
    ws.close();
    return text;
  });
  for (const text of await Promise.all(results))
    if (text) for (const id of ids) assert.equal(text[id], want);
  const ws = await open({ headers: { Authorization: 'Bearer ' + key } });
  ws.send(JSON.stringify({ type: 'chat', id: 'after', payload: chat('[mock chunks=2]', { stream: false }) }));
  assert.equal(JSON.parse((await ws.next()).text).type, 'completion');
  ws.close();
});

test('a non-streaming request gets one message with the completion', async () => {
  const ws = await open({ headers: { Authorization: 'Bearer ' + key } });
  ws.send(JSON.stringify({ type: 'chat', id: 'n', payload: chat('[mock chunks=2]', { stream: false }) }));
  const m = JSON.parse((await ws.next()).text);
  assert.equal(m.type, 'completion');
  assert.equal(m.id, 'n');
  assert.equal(m.data.choices[0].message.content, 'tok0 tok1 ');
  assert.equal(m.data.model, 'mock/gpt-test');
  assert.equal(m.data.usage.total_tokens, 12);
  ws.close();
});

test('cancel stops a running request and its upstream transfer', async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'chat', id: 'c', api_key: key, payload: chat('[mock chunks=50 interval_ms=100 tag=wscancel]') }));
  const first = JSON.parse((await ws.next()).text);
  assert.equal(first.type, 'chunk');
  ws.send(JSON.stringify({ type: 'cancel', id: 'c' }));
  let m;
  do m = JSON.parse((await ws.next()).text); while (m.type === 'chunk');
  assert.deepEqual(m, { type: 'cancelled', id: 'c' });
  // the mock names the aborted transfer by its tag, whatever other
  // transfers it counts meanwhile
  const t0 = Date.now();
  while ((await mockStats()).tag_aborted !== 'wscancel' && Date.now() - t0 < 3000)
    await new Promise((r) => setTimeout(r, 20));
  const st = await mockStats();
  assert.equal(st.tag_aborted, 'wscancel');
  assert.equal(st.tag_aborts, 1);
  // the socket is still usable
  ws.send(JSON.stringify({ type: 'ping', id: 'after' }));
  assert.deepEqual(JSON.parse((await ws.next()).text), { type: 'pong', id: 'after' });
  ws.send(JSON.stringify({ type: 'cancel', id: 'nope' }));
  assert.equal(JSON.parse((await ws.next()).text).error.code, 'unknown_request');
  ws.close();
});

test('closing the socket aborts the upstream within a second', async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'chat', api_key: key, payload: chat('[mock chunks=5 stall=midstream after=2 tag=wsclose]') }));
  await ws.next();
  const closedAt = performance.now();
  ws.terminate();
  let st;
  do {
    st = await mockStats();
    if (st.tag_aborted === 'wsclose') break;
    await new Promise((r) => setTimeout(r, 20));
  } while (performance.now() - closedAt < 3000);
  assert.equal(st.tag_aborted, 'wsclose');
  assert.equal(st.tag_aborts, 1);
  assert.ok(performance.now() - closedAt < 1000 + 100, 'abort took too long');
});

// A reader that stops reading must not grow the daemon: the outbox is
// bounded and the worker stops pulling from the provider. Nothing is lost
// once it reads again.
test('a slow reader is back-pressured, not buffered, and loses nothing', async () => {
  const pid = Number(process.env.LB_DAEMON_PID);
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  const ws = await open();
  // ~40 MB of chunks: four times what the socket buffers on the way (mock
  // to daemon, daemon to client) took on a machine whose tcp_rmem lets
  // one grow to 32 MB
  const n = 40000;
  const base = (await mockStats()).streamed;
  ws.send(JSON.stringify({ type: 'chat', id: 'big', api_key: key, payload: chat(`[mock chunks=${n} pad=800]`) }));
  await ws.next(30000);
  ws._socket.pause();
  const before = rss();
  // the provider is held back too: once the socket buffers and the
  // outbox are full its stream stops, well short of the end (on a loaded
  // machine filling them takes a while: wait until it stands still)
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let s1 = (await mockStats()).streamed, s2;
  for (let t = 0; t < 40; t++) {
    await sleep(250);
    s2 = (await mockStats()).streamed;
    if (s2 === s1 && t >= 5) break;
    s1 = s2;
  }
  s1 = s2;
  await sleep(1000);
  s2 = (await mockStats()).streamed;
  const grown = rss() - before;
  ws._socket.resume();
  let chunks = 1, done = null;
  while (!done) {
    const m = JSON.parse((await ws.next(10000)).text);
    if (m.type === 'chunk') chunks++;
    else done = m;
  }
  ws.close(); // before any assertion: an open socket would keep node alive
  const total = (await mockStats()).streamed - base;
  assert.equal(done.type, 'done');
  assert.equal(chunks, n + 2); // role, n pieces, finish
  // kernel socket buffers may still take a little; a provider that kept
  // streaming would have sent all ~40 MB within that second
  assert.ok(s2 - s1 < 1024 * 1024, `the provider kept streaming to a paused client (${s2 - s1} bytes)`);
  // what the kernel buffers depends on its settings: the bound is the
  // stream, not a guess at them
  assert.ok(s2 - base < total / 2, `provider streamed ${s2 - base} of ${total} bytes to a paused client`);
  console.log(`# paused client: provider held at ${s2 - base} of ${total} bytes`);
  // sanitizer builds hold freed memory in quarantine: RSS says nothing there
  if (!process.env.LB_SANITIZED)
    assert.ok(grown < 6 * 1024, `daemon RSS grew ${grown} KiB while the client was paused`);
});

test('auth failures', async () => {
  const ws = await open();
  ws.send(JSON.stringify({ type: 'chat', api_key: 'sk-wrong', payload: chat('hi') }));
  const f = await seedStream(ws);
  const err = JSON.parse(f[0].slice(6)).error;
  assert.equal(err.code, 'invalid_api_key');
  assert.ok(!f.join('').includes('sk-wrong'));
  ws.send(JSON.stringify({ type: 'auth', api_key: 'sk-wrong' }));
  assert.equal(JSON.parse((await ws.next()).text).error.code, 'invalid_api_key');
  // no key at all on an unauthenticated socket
  ws.send(JSON.stringify({ type: 'chat', payload: chat('hi') }));
  assert.match(JSON.parse((await ws.next()).text).error.message, /Missing required fields/);
  ws.close();
  // a wrong key on the upgrade refuses the handshake
  await assert.rejects(open({ headers: { Authorization: 'Bearer sk-wrong' } }));
});

test('bad input gets an error message and the socket stays usable', async () => {
  const ws = await open();
  const cases = [
    ['not json', 'invalid_message'],
    ['{"type":"chat"', 'invalid_message'],
    ['[1,2]', 'invalid_message'],
    ['{"type":"dance"}', 'invalid_message'],
    ['{"type":"chat","api_key":"x"}', 'invalid_message'],
    ['{"type":"chat","api_key":"x","payload":{}}', 'invalid_message'],
    ['{"type":"chat","api_key":"x","payload":"hi"}', 'invalid_message'],
    ['[' .repeat(10000) + ']'.repeat(10000), 'invalid_message'],
  ];
  for (const [text, code] of cases) {
    ws.send(text);
    const m = JSON.parse((await ws.next()).text);
    assert.equal(m.error.code, code, text.slice(0, 40));
    assert.ok(m.error.message && m.error.timestamp);
  }
  ws.send(Buffer.from([0, 1, 2]), { binary: true });
  assert.equal(JSON.parse((await ws.next()).text).error.code, 'binary_frame');
  ws.send('x'.repeat(70000));
  assert.equal(JSON.parse((await ws.next()).text).error.code, 'message_too_large');
  // a message in fragments is reassembled
  ws.send('{"type":"pi', { fin: false });
  ws.send('ng","id":"frag"}', { fin: true });
  assert.deepEqual(JSON.parse((await ws.next()).text), { type: 'pong', id: 'frag' });
  ws.close();
});

test('invalid UTF-8 is a protocol violation: close 1007', async () => {
  const ws = await open();
  // ws refuses to send invalid UTF-8 as text, so write a raw masked frame
  const payload = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask,
    Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
  ws._socket.write(frame);
  assert.equal(await ws.closed, 1007);
});

test('upgrade from a browser origin outside the allow-list is refused', async () => {
  await assert.rejects(open({ origin: 'http://evil.example' }));
  const ws = await open({ origin: 'http://app.example' });
  ws.close();
});
