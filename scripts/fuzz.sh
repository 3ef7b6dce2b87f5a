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

# Seeds: the fixtures whole (capture), and the first 4 and 16 KiB of each of
# their blocks decompressed (block: small inputs run fastest).
seeds=fuzz/corpus
mkdir -p "$seeds/capture" "$seeds/block"
for f in fixtures/*.db; do
    name=$(basename "$f" .db)
    cp "$f" "$seeds/capture/$name"
    tmp=$(mktemp -d)
    (cd "$tmp" && sqlite3 "$OLDPWD/$f" "SELECT writefile('b' || block_id, data) FROM blocks" >/dev/null)
    for b in "$tmp"/b*; do
        zstd -d -q -f "$b" -o "$b.raw"
        for k in 4 16; do
            head -c $((k * 1024)) "$b.raw" > "$seeds/block/$name-$(basename "$b")-${k}k"
        done
    done
    rm -rf "$tmp"
done

# Inputs up to 64 KiB for the block target (runs fast; a record is at most
# a few KiB) and 1 MiB for whole files. Debug assertions are on, so that an
# arithmetic overflow is a crash; no sanitizer (the code is safe Rust but
# for the record header's read_unaligned), for speed.
for t in "${targets[@]}"; do
    case $t in block) max_len=65536 ;; *) max_len=1048576 ;; esac
    mkdir -p "fuzz/artifacts/$t"
    say "$t: ${secs} s"
    cargo +nightly fuzz run --release --debug-assertions --sanitizer none "$t" "$seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/artifacts/$t.log" 2>&1 || true
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)|panicked|Done [0-9]+ runs' \
        "fuzz/artifacts/$t.log" || true
    found=$(find "fuzz/artifacts/$t" -type f | wc -l)
    say "$t: $found inputs found (fuzz/artifacts/$t); copy them into fuzz/regressions/$t"
done
