#!/bin/sh
# Regenerate the seed inputs of tests/fuzz/corpus/<target>/ from the
# recorded wire fixtures in tests/fixtures (and .env.example), with the
# selector byte each harness expects in front where it has one (see the
# harness's header comment). Files the fuzzers found (crash reproducers,
# named crash-*, leak-*, oom-*, timeout-*, repro-*) are left alone.
# Maintainer tool: needs python3 for the mapping cases.
# Usage: tests/fuzz/seed-corpus.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fx=$here/../fixtures
c=$here/corpus

# seed TARGET NAME PREFIX_OCTAL FILE: PREFIX (a byte, or "" for none) + FILE
seed() {
	mkdir -p "$c/$1"
	{ if [ -n "$3" ]; then printf "\\$3"; fi; cat "$4"; } >"$c/$1/$2"
}
# text TARGET NAME PREFIX_OCTAL TEXT
text() {
	mkdir -p "$c/$1"
	{ if [ -n "$3" ]; then printf "\\$3"; fi; printf '%s' "$4"; } >"$c/$1/$2"
}

# sse: byte 0 = cap (bits 0-1: 16, 64, 1024, 16 MiB) and piece mode
for p in openai deepseek gemini; do
	for f in "$fx/$p"/*.sse; do
		seed sse "$p-$(basename "$f")" 007 "$f"
	done
done
seed sse small-cap-openai-stream 001 "$fx/openai/stream.sse"
text sse crlf-comments-fields 013 ": comment
event: x
id: 1
retry: 10
data:a
data: b

data
data:

data:c"

# stream: byte 0 = pieces (bits 0-3), client leaves after N (bits 4-6),
# include_usage (bit 7)
for f in "$fx"/openai/*.sse "$fx"/deepseek/*.sse; do
	seed openai_stream "$(basename "$(dirname "$f")")-$(basename "$f")" 200 "$f"
done
seed openai_stream client-leaves-openai-stream 043 "$fx/openai/stream.sse"
for f in "$fx"/gemini/*.sse; do
	seed gemini_stream "$(basename "$f")" 200 "$f"
done
seed gemini_stream client-leaves-stream 025 "$fx/gemini/stream.sse"

# response: byte 0 = status index (0-3: 200, then 400 401 403 404 408 413
# 422 429 500 502 503 504), bit 4 Retry-After, bit 5 no body
status_byte() {
	case $1 in
	400) echo 004 ;; 401) echo 005 ;; 402) echo 015 ;; 403) echo 006 ;;
	404) echo 007 ;; 422) echo 012 ;; 429) echo 013 ;; 500) echo 014 ;;
	503) echo 016 ;; *) echo 014 ;;
	esac
}
for p in openai deepseek gemini; do
	t=openai_response
	[ "$p" = gemini ] && t=gemini_response
	for f in "$fx/$p"/*.json; do
		b=$(basename "$f")
		case $b in
		manifest.json|request*) ;;
		error-*)
			s=$(echo "$b" | sed 's/^error-\([0-9]*\).*/\1/')
			seed $t "$p-$b" "$(status_byte "$s")" "$f" ;;
		*) seed $t "$p-$b" 000 "$f" ;;
		esac
	done
done
seed gemini_response openai-compat-error-429 013 "$fx/gemini/openai-compat-error.json"

# request: the client's body as it is
for f in "$fx"/deepseek/request*.json; do
	seed openai_request "deepseek-$(basename "$f")" "" "$f"
	seed request "deepseek-$(basename "$f")" "" "$f"
done

# the Gemini mapping cases: requests, responses and streams
python3 - "$fx/mapping/mapping-cases.json" "$c" <<'PY'
import json, os, sys
cases = json.load(open(sys.argv[1]))["cases"]
out = sys.argv[2]
statuses = [200, 200, 200, 200, 400, 401, 403, 404, 408, 413, 422, 429,
            500, 502, 503, 504]
def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)
for c in cases:
    req = json.dumps(c["openai_request"], ensure_ascii=False).encode()
    put("gemini_request", c["id"], req)
    put("openai_request", "mapping-" + c["id"], req)
    put("request", "mapping-" + c["id"], req)
    r = c.get("gemini_response")
    if r:
        st = r["status"]
        sel = statuses.index(st) if st in statuses else 12
        put("gemini_response", "mapping-" + c["id"],
            bytes([sel]) + json.dumps(r["body"]).encode())
    s = c.get("gemini_stream")
    if s:
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n"
                        for e in s["events"])
        put("gemini_stream", "mapping-" + c["id"], b"\x80" + body)
PY

# config: every config fixture; one with a .env after a NUL byte
for f in "$fx"/config/*.yaml; do
	seed config "$(basename "$f")" "" "$f"
done
{ printf 'providers:\n  closeai:\n    base_url: ${BASE}\n    models:\n      m<v>:\n        param_config:\n          rename_params: {max_tokens: max_completion_tokens}\n'
  printf '\000BASE=https://h/v1\nACCESS_API_KEYS={"k1":1,"k2":2}\nCLOSEAI_API_KEY=sk-x\n'; } >"$c/config/with-env"

# env
mkdir -p "$c/env"
cp "$here/../../.env.example" "$c/env/env.example"
text env forms "" '# comment
KEY=VALUE
export EXPORTED=yes
DQ="line1\nline2 # not a comment"
SQ='"'"'literal \n $x'"'"'
UNQ=value # comment
HASH=a#b
SPACED  =  spaced value
EMPTY=
ESC="q\"x\\y"
CRLF=crlf
LAST=no newline'
text env errors "" 'no equals sign
1BAD=x
Q="unterminated
T="a" b'

# ws_proto: byte 0 bit 0 = socket already authenticated
text ws_proto chat 000 '{"type":"chat","api_key":"k","payload":{"model":"closeai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}}'
text ws_proto chat-id-authed 001 '{"type":"chat","id":"r1","payload":{"model":"a/b","stream":false}}'
text ws_proto chat-int-id 001 '{"type":"chat","id":42,"payload":{"model":"a/b"}}'
text ws_proto auth 000 '{"type":"auth","api_key":"k"}'
text ws_proto cancel 000 '{"type":"cancel","id":"r1"}'
text ws_proto ping 000 '{"type":"ping","id":7}'
text ws_proto bad-id 000 '{"type":"ping","id":{"x":1}}'
text ws_proto not-object 000 '[1,2]'
