#!/usr/bin/env bash
# How long `record` takes to stop (issue 13), with the TLS probes of every kind attached: the
# system's libssl and node (OpenSSL), a Go program (crypto/tls, tests/peers/go/go_server.go) and
# Bun (BoringSSL by the scan) running while it records. Each build records `--duration 1s`
# RUNS times, with and without --no-tls, in turns; printed: the median "stopped in" the summary
# gives and the median wall time of the whole command (start, one second, stop).
#   bench/stop.sh [RUNS] [OLD_BINARY]      # OLD_BINARY: another build, measured in the same turns
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-5}"
BINS=("$ROOT/target/release/mcpspy")
[ -n "${2:-}" ] && BINS+=("$2")
WORK="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

GO111MODULE=off go build -o "$WORK/go-server" "$ROOT/tests/peers/go/go_server.go" "$ROOT/tests/peers/go/msglog.go"
"$WORK/go-server" -plain -addr 127.0.0.1:0 -log /dev/null 2>/dev/null &
PIDS+=($!)
"$ROOT/tests/peers/tls-apps/node_modules/bun/bin/bun.exe" -e 'setInterval(() => {}, 1e6)' &
PIDS+=($!)
node -e 'require("https"); setInterval(() => {}, 1e6)' &
PIDS+=($!)
sleep 1

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# BIN ARGS... -> "stopped-in wall" of one recording
one() {
    local bin="$1" start end err
    shift
    start=$(date +%s.%N)
    err=$("$bin" record -o "$WORK/c.db" --force --duration 1s "$@" 2>&1 >/dev/null)
    end=$(date +%s.%N)
    echo "$(sed -n 's/.*(stopped in \([0-9.]*\)s).*/\1/p' <<<"$err") $(echo "$end - $start" | bc)"
}

declare -A STOP WALL
for _ in $(seq "$RUNS"); do
    for bin in "${BINS[@]}"; do
        for mode in tls no-tls; do
            args=()
            [ "$mode" = no-tls ] && args=(--no-tls)
            read -r s w < <(one "$bin" "${args[@]}")
            STOP["$bin $mode"]+="$s "
            WALL["$bin $mode"]+="$w "
        done
    done
done
"${BINS[0]}" record -o "$WORK/c.db" --force --duration 1s 2>/dev/null
# What the last recording probed, from its meta table (the capture is SQLite).
python3 - "$WORK/c.db" <<'PY'
import json, sqlite3, sys
tls = json.loads(sqlite3.connect(sys.argv[1]).execute("select value from meta where key='tls'").fetchone()[0])
print("probed:", ", ".join(t["path"].rsplit("/", 1)[-1] for t in tls["probed"]), "; errors:", tls["errors"])
PY
echo "| build | probes | stopped in (median s) | whole command, --duration 1s (median s) |"
echo "|---|---|---|---|"
for bin in "${BINS[@]}"; do
    for mode in tls no-tls; do
        s=$(tr ' ' '\n' <<<"${STOP["$bin $mode"]}" | grep . | median)
        w=$(tr ' ' '\n' <<<"${WALL["$bin $mode"]}" | grep . | median)
        echo "| $bin | $mode | $s | $(printf %.2f "$w") |"
    done
done
