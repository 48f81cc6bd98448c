// SPDX-License-Identifier: MIT
// A page in headless Chromium opens /v1/ws, streams a reply and shows it:
// proof that browser chat apps work (Origin check, framing, no CORS
// surprises), and that fetch() from a page gets through CORS too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

const chromiumPath = process.env.LB_CHROMIUM || '/usr/bin/chromium';
const base = process.env.LB_BASE_URL.replace(/\/v1$/, '');
const key = process.env.LB_CLIENT_KEY;
// The page is served from this origin (intercepted, no server needed);
// run-compat.sh lists it in server.cors_origins.
const pageOrigin = 'http://app.example';

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
  return (await r.json()).choices[0].message.content;
}
window.viaFetch = viaFetch;
</script>`;

test('a browser page chats over /v1/ws and via fetch', { skip: !existsSync(chromiumPath) && `no ${chromiumPath}` }, async () => {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.route(pageOrigin + '/', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: page }));
    await p.goto(pageOrigin + '/');
    await p.waitForFunction(() => document.getElementById('status').textContent === 'done',
      null, { timeout: 10000 });
    assert.equal(await p.textContent('#out'), 'tok0 tok1 tok2 tok3 ');
    assert.equal(await p.evaluate(() => window.viaFetch()), 'tok0 tok1 ');
  } finally {
    await browser.close();
  }
});
