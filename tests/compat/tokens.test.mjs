// SPDX-License-Identifier: MIT
// `llm-bridge tokens` against the reference implementation, js-tiktoken, on
// a multilingual corpus: English, code, CJK, emoji, whitespace runs, very
// long words, and seeded random mixes of all of them. Counts must be
// identical, not close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { getEncoding } from "js-tiktoken";

const daemon = process.env.LB_DAEMON;
// building an encoding parses its whole rank table: once per encoding
const encodings = new Map();
const enc = (name) => {
	if (!encodings.has(name)) encodings.set(name, getEncoding(name));
	return encodings.get(name);
};

const fixed = [
	"",
	"Hello, world!",
	"The quick brown fox jumps over the lazy dog. It's 3.14159 o'clock; don't panic!",
	"int main(void)\n{\n\tfor (int i = 0; i < 10; i++)\n\t\tprintf(\"%d\\n\", i);\n\treturn 0;\n}\n",
	"def f(x):\n    return [y ** 2 for y in range(x) if y % 3 == 0]  # comment\n",
	"SELECT id, name FROM users WHERE created_at >= '2026-01-01' ORDER BY id DESC;",
	"{\"model\":\"gemini/gemini-2.0-flash\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	"中华人民共和国成立于1949年。今天天气很好，我们去公园散步吧！",
	"日本語のテキスト：東京は日本の首都です。カタカナとひらがな。",
	"한국어 문장입니다. 서울은 대한민국의 수도입니다.",
	"Привет, мир! Съешь же ещё этих мягких французских булок.",
	"مرحبا بالعالم، هذه جملة عربية للاختبار.",
	"नमस्ते दुनिया, यह एक परीक्षण वाक्य है।",
	"Ελληνικά: Γειά σου Κόσμε· ΑΒΓΔ αβγδ.",
	"😀😃😄😁 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ✌🏽 emoji mixed with text 🎉!",
	" \t \n\n\n   \r\n\r\n        \t\t\t  x   ",
	"                                                                                ",
	"\n".repeat(200),
	"a".repeat(2000),
	"supercalifragilisticexpialidocious".repeat(60),
	"Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
	"1234567890".repeat(100),
	"<|endoftext|> <|im_start|>user\nspecial tokens count as plain text<|im_end|>",
	"Ünïcödé àccénts: café, naïve, façade, Straße, İstanbul, ǅ, ﬁ ligature",
	"mixed 中文 and English 与 数字 123 and emoji 🚀 and code `x += 1;`",
	"\u00a0\u2000\u2001\u3000 unusual spaces \u200b zero width \ufeff bom",
];

// A small deterministic generator so a failure reproduces.
function rng(seed) {
	let s = seed >>> 0;
	return () => {
		s = (s * 1664525 + 1013904223) >>> 0;
		return s / 2 ** 32;
	};
}

const pieces = ["the", " ", "  ", "\n", "\r\n", "don't", "'S", "中文", "日本",
	"😀", "👍🏽", "123", "4567", "$", "...", "½", "ß", "İ", "é", "ᾈ",
	"مرحبا", "\t", "{", "}", "()", "_", "/", "\"", "x", "ABC", "abc",
	"\u3000", "ª", "!!", "#", "@user", "http://example.com/a?b=c"];

function randomTexts(n) {
	const r = rng(20261130);
	const out = [];
	for (let i = 0; i < n; i++) {
		const len = 1 + Math.floor(r() * 60);
		let t = "";
		for (let j = 0; j < len; j++) t += pieces[Math.floor(r() * pieces.length)];
		out.push(t);
	}
	return out;
}

const corpus = [...fixed, ...randomTexts(400)];

function gatewayCounts(args) {
	// one process counts every text: NUL-separated in, one count per line out
	const input = corpus.join("\0");
	const p = spawnSync(daemon, ["tokens", ...args, "--null"], {
		input, maxBuffer: 1 << 24,
	});
	assert.equal(p.status, 0, p.stderr.toString());
	return p.stdout.toString().trim().split("\n").map(Number);
}

for (const name of ["o200k_base", "cl100k_base"]) {
	test(`${name}: counts identical to js-tiktoken on ${corpus.length} texts`, () => {
		const got = gatewayCounts(["--encoding", name]);
		assert.equal(got.length, corpus.length);
		corpus.forEach((text, i) => {
			assert.equal(got[i], enc(name).encode(text, [], []).length,
				`text #${i} ${JSON.stringify(text.slice(0, 60))}`);
		});
	});
}

test("a streamed stdin counts like the whole text (large input)", () => {
	const text = corpus.join(" ").repeat(3); // well past one 64 KiB read
	const p = spawnSync(daemon, ["tokens", "--model", "openai/gpt-4o"],
		{ input: text, maxBuffer: 1 << 24 });
	assert.equal(p.status, 0, p.stderr.toString());
	assert.equal(Number(p.stdout.toString()),
		enc("o200k_base").encode(text, [], []).length);
});

test("--model picks the model's encoding", () => {
	const text = "Hello world, how many tokens? 你好";
	const run = (m) => Number(spawnSync(daemon, ["tokens", "--model", m],
		{ input: text }).stdout.toString());
	assert.equal(run("openai/gpt-4"), enc("cl100k_base").encode(text, [], []).length);
	assert.equal(run("openai/gpt-4o-mini"), enc("o200k_base").encode(text, [], []).length);
});

test("bad arguments are refused with a message", () => {
	const p = spawnSync(daemon, ["tokens", "--encoding", "r50k_base"], { input: "x" });
	assert.equal(p.status, 2);
	assert.match(p.stderr.toString(), /unknown encoding 'r50k_base'/);
});
