// SPDX-License-Identifier: MIT
// A page in headless Chromium opens /v1/ws, streams a reply and shows it:
// proof that browser chat apps work (Origin check, framing, no CORS
// surprises), and that fetch() from a page gets through CORS too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';

const chromiumPath = process.env.LB_CHROMIUM || '/usr/bin/chromium';
const base = process.env.LB_BASE_URL.replace(/\/v1$/, '');
const key = process.env.LB_CLIENT_KEY;
// The page is served from a loopback port (Chromium's local network access
// rules let only loopback pages reach loopback sockets); run-compat.sh
// picked the port and listed the origin in server.cors_origins.
const pagePort = Number(process.env.LB_PAGE_PORT);

const page = `<!doctype html><meta charset="utf-8"><title>chat</title>
<div id="out"></div><div id="status">connecting</div>
<script>
const out = document.getElementById('out');
const status = document.getElementById('status');
const ws = new WebSocket(${JSON.stringify(base.replace(/^http/, 'ws') + '/v1/ws')});
ws.onopen = () => {
  status.textContent = 'open';
  ws.send(JSON.stringify({ type: 'chat', api_key: ${JSON.stringify(key)},
    payload: { model: 'mock/gpt-test',
      messages: [{ role: 'user', content: 'hi [mock chunks=4 interval_ms=20]' }] } }));
};
ws.onmessage = (ev) => {
  if (ev.data === 'data: [DONE]\\n\\n') { status.textContent = 'done'; ws.close(); return; }
  const chunk = JSON.parse(ev.data.slice(6));
  out.textContent += chunk.choices[0]?.delta?.content ?? '';
};
ws.onerror = () => { status.textContent = 'error'; };
async function viaFetch() {
  const r = await fetch(${JSON.stringify(base + '/v1/chat/completions')}, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + ${JSON.stringify(key)} },
    body: JSON.stringify({ model: 'mock/gpt-test', messages: [{ role: 'user', content: 'x [mock chunks=2]' }] }),
  });
  // the request id is readable only if the gateway exposes it (CORS)
  return (await r.json()).choices[0].message.content + '|' + (r.headers.get('x-request-id') ?? 'hidden');
}
window.viaFetch = viaFetch;
</script>`;

test('a browser page chats over /v1/ws and via fetch', { skip: !existsSync(chromiumPath) && `no ${chromiumPath}` }, async () => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  });
  await new Promise((resolve) => server.listen(pagePort, '127.0.0.1', resolve));
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(`http://127.0.0.1:${pagePort}/`);
    await p.waitForFunction(() => document.getElementById('status').textContent === 'done',
      null, { timeout: 10000 });
    assert.equal(await p.textContent('#out'), 'tok0 tok1 tok2 tok3 ');
    const [text, requestId] = (await p.evaluate(() => window.viaFetch())).split('|');
    assert.equal(text, 'tok0 tok1 ');
    assert.match(requestId, /^req_[0-9a-f]+$/);
  } finally {
    await browser.close();
    server.close();
  }
});
