#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, one after another, on the code at HEAD,
# each into target/bench-results/NAME.txt with the commit and the load
# average before and after. As root (the recording benchmarks), after
# scripts/setup.sh and scripts/bench-setup.sh; about 40 minutes.
#   [SEAL_BASE=f41b742/mcpspy] bench/all.sh [CAPTURE-1GIB]
#   CAPTURE-1GIB: the 1 GiB capture of bench/audit.py (made if missing)
set -u
cd "$(dirname "$0")/.."
out=target/bench-results
mkdir -p "$out"
big=${1:-/tmp/mcpspy-bench-1g.db}
run() {
    local name=$1
    shift
    {
        echo "# $name: $*"
        echo "commit $(git rev-parse --short HEAD), $(git status --short | wc -l) files changed"
        date -u
        uptime
    } >"$out/$name.txt"
    "$@" >>"$out/$name.txt" 2>&1
    { echo "exit $?"; date -u; uptime; } >>"$out/$name.txt"
}
run decode python3 bench/decode.py --runs 5
run exports python3 bench/exports.py --runs 3
run check python3 bench/check.py --runs 3
run h2 bash bench/h2.sh 100000 5
run boringssl bash bench/boringssl_scan.sh 5
run audit python3 bench/audit.py --runs 1 --capture "$big"
run overhead flock /tmp/mcpspy-bpf.lock python3 bench/overhead.py --pairs 3 --rungs tp-btf
run program_cost flock /tmp/mcpspy-bpf.lock python3 bench/program_cost.py
# The seal's cost needs a build of f41b742, the commit before the seal.
if [ -n "${SEAL_BASE:-}" ]; then
    run seal flock /tmp/mcpspy-bpf.lock python3 bench/seal.py --base "$SEAL_BASE" --pairs 9
fi
