#!/usr/bin/env bash
# Fuzzes the block reader and the decoder (fuzz/), each target for a time
# budget, with the limits the project holds them to: no panic, no input
# that runs over 10 s, no more than 1 GiB of memory, inputs up to 1 MiB.
# What a run finds lands in fuzz/artifacts/TARGET; copy it into
# fuzz/regressions/TARGET and it is replayed by `cargo test` on stable
# (tests/decode/fuzz_regressions.rs).
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]     default: 300 s, block and capture
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=fuzz
. scripts/apt.sh

secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(block capture)

install_apt clang libelf-dev zlib1g-dev pkg-config sqlite3 zstd
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

# Seeds: the fixtures whole (capture), and their blocks decompressed (block).
seeds=fuzz/corpus
mkdir -p "$seeds/capture" "$seeds/block"
for f in fixtures/*.db; do
    name=$(basename "$f" .db)
    cp "$f" "$seeds/capture/$name"
    tmp=$(mktemp -d)
    (cd "$tmp" && sqlite3 "$OLDPWD/$f" "SELECT writefile('b' || block_id, data) FROM blocks" >/dev/null)
    for b in "$tmp"/b*; do
        zstd -d -q -f "$b" -o "$seeds/block/$name-$(basename "$b")"
    done
    rm -rf "$tmp"
done

for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t"
    say "$t: ${secs} s"
    cargo +nightly fuzz run --release "$t" "$seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len=1048576 \
        -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" 2>&1 | tee "fuzz/artifacts/$t.log" |
        grep -E '^(stat::|==|INFO: Running|#[0-9]+ +DONE|SUMMARY|Done)' || true
done
