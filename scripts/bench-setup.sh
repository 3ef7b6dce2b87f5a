#!/usr/bin/env bash
# What the benchmarks need beyond scripts/setup.sh: hyperfine and GNU time
# (bench/decode.py, bench/compare.py), taskset, bpftool (bench/program_cost.py).
# Idempotent; apt as root (or through sudo).
set -euo pipefail
PREFIX=bench-setup
# shellcheck source=scripts/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
install_apt hyperfine time util-linux bpftool
