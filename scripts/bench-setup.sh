#!/usr/bin/env bash
# What the benchmarks need beyond scripts/setup.sh: hyperfine and GNU time
# (bench/decode.py), bpftool (bench/program_cost.py). Idempotent; apt as root (or through sudo).
set -euo pipefail
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v taskset >/dev/null || missing+=(util-linux)
command -v bpftool >/dev/null || [ -x /usr/sbin/bpftool ] || missing+=(bpftool)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "bench-setup: ok (hyperfine, /usr/bin/time, taskset, bpftool)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "bench-setup: apt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
