#!/usr/bin/env bash
# One whole session between the Go MCP peers (standard library only):
# Streamable HTTP over HTTP/2 over TLS on 127.0.0.1.
#   session.sh OUT [pie] [client flags...]
# builds go-server and go-client into OUT (stripped PIEs with `pie`), makes
# a self-signed certificate, runs the server, then the client (after a 1 s
# start delay, so that a recorder that probes new programs has attached),
# and stops the server. OUT gets server.jsonl and client.jsonl.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT=$1; shift
mkdir -p "$OUT"
FLAGS=()
if [ "${1:-}" = pie ]; then FLAGS=(-buildmode=pie "-ldflags=-s -w"); shift; fi
GO111MODULE=off go build "${FLAGS[@]}" -o "$OUT/go-server" "$HERE/go_server.go" "$HERE/msglog.go"
GO111MODULE=off go build "${FLAGS[@]}" -o "$OUT/go-client" "$HERE/go_client.go" "$HERE/msglog.go"
"$HERE/../make_cert.sh" "$OUT/tls" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$OUT/go-server" -addr "127.0.0.1:$PORT" -cert "$OUT/tls/cert.pem" -key "$OUT/tls/key.pem" \
    -log "$OUT/server.jsonl" 2>"$OUT/server.stderr" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
"$OUT/go-client" -url "https://127.0.0.1:$PORT/mcp" -ca "$OUT/tls/cert.pem" \
    -log "$OUT/client.jsonl" -start-delay 1s "$@"
