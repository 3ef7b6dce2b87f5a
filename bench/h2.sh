#!/usr/bin/env bash
# HTTP/2 against HTTP/1.1 decode throughput on captures of the same messages
# (bench/synth.rs: N 1 KiB JSON-RPC messages, requests as POST bodies,
# results as JSON responses, one loopback connection, both ends recorded).
# Alternates the two exports RUNS times; prints each run and the medians.
#   bench/h2.sh [MESSAGES=100000] [RUNS=5]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-100000}
RUNS=${2:-5}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cargo build --release --quiet --bench synth
SYNTH=$(ls -t target/release/deps/synth-* | grep -v '\.d$' | head -1)
for t in http1 http2; do "$SYNTH" "$OUT/$t.db" "$N" "$t"; done
for r in $(seq "$RUNS"); do
    for t in http1 http2; do
        /usr/bin/time -f "$t %e" target/release/mcpspy export "$OUT/$t.db" 2>>"$OUT/times" >/dev/null
    done
done
cat "$OUT/times"
python3 - "$OUT/times" "$N" <<'PY'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    t.setdefault(k, []).append(float(v))
h1, h2 = statistics.median(t["http1"]), statistics.median(t["http2"])
n = int(sys.argv[2])
print(f"http1 {h1:.2f} s ({n / h1:,.0f} msg/s), http2 {h2:.2f} s ({n / h2:,.0f} msg/s): http2/http1 = {h2 / h1:.3f}x")
PY
