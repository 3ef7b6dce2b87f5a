#!/usr/bin/env bash
# The BoringSSL scan's cost (docs/boringssl.md), as record pays it at start or at a program's exec:
# `mcpspy scan-tls` on Bun, a `bun build --compile` program and Claude Code (tests/peers/tls-apps),
# gRPC's Python extension (a position-independent BoringSSL, in .venv), and on programs that are
# not BoringSSL (node, Deno), in three states:
#   cold    page cache dropped (root), no cached result: the first start after a boot
#   warm    the file in the page cache, no cached result (--no-cache): the first start after install
#   cached  the result cached by BuildID: every later start
# The time is the scan's own (the "seconds" scan-tls reports), the median of RUNS runs; cold is
# one run per program. Needs root for cold (drop_caches); prints a markdown table.
#   bench/boringssl_scan.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/mcpspy"
APPS="$ROOT/tests/peers/tls-apps/node_modules"
RUNS="${1:-5}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$APPS/bun/bin/bun.exe" build --compile "$ROOT/tests/peers/fetch_client.mjs" --outfile "$WORK/compiled" >/dev/null
PROGRAMS=("$APPS/bun/bin/bun.exe" "$WORK/compiled" "$APPS/@anthropic-ai/claude-code-linux-x64/claude"
    "$(ls "$ROOT"/.venv/lib/python3*/site-packages/grpc/_cython/cygrpc*.so)"
    "$(readlink -f "$(command -v node)")" "$APPS/@deno/linux-x64-glibc/deno")

seconds() { # ARGS... -> the scan's seconds
    "$BIN" scan-tls "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
verdict() { "$BIN" scan-tls --no-cache "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["scan"]["verdict"])'; }

echo "| program | size | verdict | cold | warm | cached |"
echo "|---|---|---|---|---|---|"
for p in "${PROGRAMS[@]}"; do
    [ -f "$p" ] || { echo "| $(basename "$p") | missing | | | | |"; continue; }
    export XDG_CACHE_HOME="$WORK/cache-$(basename "$p")"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    cold="$(seconds --no-cache "$p")"
    warm="$(for _ in $(seq "$RUNS"); do seconds --no-cache "$p"; done | median)"
    seconds "$p" >/dev/null # fills the cache
    cached="$(for _ in $(seq "$RUNS"); do seconds "$p"; done | median)"
    ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }
    printf '| %s | %s MB | %s | %s | %s | %s |\n' "$(basename "$p")" "$(($(stat -c %s "$p") / 1000000))" \
        "$(verdict "$p")" "$(ms "$cold")" "$(ms "$warm")" "$(ms "$cached")"
done
