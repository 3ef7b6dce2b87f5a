#!/usr/bin/env bash
# The one test command (README, .ci/run): sets up a fresh machine, then checks
# formatting and lints and runs every test, the root-only BPF tests included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# rustup's cargo, also when the caller's PATH lacks it (sudo, CI).
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release --no-fail-fast
