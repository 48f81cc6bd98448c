// SPDX-License-Identifier: MIT
// HTTPS and WSS on the one port, with real clients that trust only the
// test CA (NODE_EXTRA_CA_CERTS): the official openai SDK, completion and
// stream, and the ws package on wss://.../v1/ws.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import tls from "node:tls";
import WebSocket from "ws";

const base = process.env.LB_TLS_BASE_URL; // https://127.0.0.1:PORT/v1
const key = process.env.LB_CLIENT_KEY;
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0 });

test("the SDK over HTTPS: a completion", async () => {
	const r = await client.chat.completions.create({
		model: "mock/gpt-test",
		messages: [{ role: "user", content: "hi [mock chunks=3]" }],
	});
	assert.equal(r.choices[0].message.content, "tok0 tok1 tok2 ");
	assert.equal(r.usage.total_tokens, 13);
});

test("the SDK over HTTPS: a stream arrives whole", async () => {
	const stream = await client.chat.completions.create({
		model: "mock/gpt-test",
		stream: true,
		messages: [{ role: "user", content: "hi [mock chunks=40]" }],
	});
	let text = "";
	for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
	assert.equal(text, Array.from({ length: 40 }, (_, i) => `tok${i} `).join(""));
});

test("WSS: the original's chat message over TLS", async () => {
	const url = base.replace(/^https/, "wss").replace(/\/v1$/, "") + "/v1/ws";
	const ws = new WebSocket(url);
	await new Promise((res, rej) => { ws.on("open", res); ws.on("error", rej); });
	const msgs = [];
	const done = new Promise((res) => ws.on("message", (d) => {
		const m = JSON.parse(d.toString());
		msgs.push(m);
		if (m.type !== "chunk") res(m);
	}));
	ws.send(JSON.stringify({ type: "chat", api_key: key, id: "t1",
		payload: { model: "mock/gpt-test", stream: true,
			messages: [{ role: "user", content: "[mock chunks=5]" }] } }));
	const end = await done;
	assert.equal(end.type, "done");
	assert.equal(end.id, "t1");
	assert.equal(msgs.filter((m) => m.type === "chunk").length, 7);
	ws.close();
});

test("a client that does not trust the test CA is refused", async () => {
	// an explicit, empty CA list replaces the store NODE_EXTRA_CA_CERTS adds to
	const { port } = new URL(base);
	const err = await new Promise((res) => {
		const s = tls.connect({ host: "127.0.0.1", port: Number(port), ca: [] },
			() => { s.end(); res(null); });
		s.on("error", res);
	});
	assert.ok(err, "an untrusted certificate was accepted");
	assert.match(String(err.code), /UNABLE|SELF_SIGNED|CERT/);
});
