#!/usr/bin/env bash
# An MCP exchange over HTTPS between Deno's fetch (rustls, which negotiates
# HTTP/2) and the Go MCP server, Deno writing its TLS secrets to a key log.
#   deno_session.sh OUT KEYLOG [BIG_SIZE]
# builds go-server into OUT, makes a CA and a server certificate signed by it
# (rustls refuses a CA as the server's own certificate), runs the server, runs
# tests/peers/fetch_client.mjs under Deno with SSLKEYLOGFILE=KEYLOG (the `big`
# tool asked for BIG_SIZE bytes, default 200000), and stops the server. OUT
# gets server.jsonl, the server's log of every message.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT=$1 KEYLOG=$2 BIG=${3:-200000}
DENO="$HERE/tls-apps/node_modules/@deno/linux-x64-glibc/deno"
mkdir -p "$OUT"
GO111MODULE=off go build -o "$OUT/go-server" "$HERE/go/go_server.go" "$HERE/go/msglog.go"
"$HERE/make_pki.sh" "$OUT/pki" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$OUT/go-server" -addr "127.0.0.1:$PORT" -cert "$OUT/pki/cert.pem" -key "$OUT/pki/key.pem" \
    -log "$OUT/server.jsonl" 2>"$OUT/server.stderr" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
# The server's first TLS call comes after a recorder's probes attach to it.
sleep 1
SSLKEYLOGFILE="$KEYLOG" DENO_CERT="$OUT/pki/ca.pem" DENO_DIR="$OUT/deno" BLOB_TOOL=big \
    "$DENO" run --allow-net --allow-env --allow-read "$HERE/fetch_client.mjs" \
    "https://127.0.0.1:$PORT/mcp" "$BIG"
