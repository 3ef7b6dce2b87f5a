#!/usr/bin/env bash
# mcpspy's one setup script: build and test dependencies, idempotent, safe to rerun.
#
# Runs as root on a fresh clone on a fresh Debian 12 machine (CI does exactly that) and needs no
# network but the package registries: Debian's apt, PyPI and npm. When everything is already in
# place it only checks, in a few seconds.
#
#   apt     clang, libelf-dev, zlib1g-dev, pkg-config, make, gcc (build: libbpf-sys, the BPF object);
#           strace (tests/peers/syscall_truth.py), openssl (self-signed certs for the TLS tests),
#           golang-go (Go 1.19: the Go test peers in tests/peers/go, Go crypto/tls over HTTP/2);
#           python3-venv and nodejs/npm only where python3 or node is missing.
#   ./.venv                       the PyPI `mcp` SDK and its HTTP stack, DuckDB, chDB and the OpenTelemetry
#                                 protobuf definitions (the export tests), gRPC's wheel (a position-independent
#                                 BoringSSL for the scan), pinned in tests/peers/requirements.lock
#   tests/peers/node/node_modules @modelcontextprotocol/sdk and server-everything, pinned by package-lock.json (npm ci)
#   tests/peers/tls-apps/node_modules  Bun and Deno (TLS without OpenSSL symbols; key logs) and, when npm can
#                                 install it, Claude Code (an optional dependency), pinned by package-lock.json
#
# Environment: MCPSPY_PYTHON picks the interpreter for the venv (default: python3 on PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PEERS="$ROOT/tests/peers"
NODE_DIR="$PEERS/node"

PREFIX=setup
# shellcheck source=scripts/apt.sh
. "$ROOT/scripts/apt.sh"

# --- apt ---------------------------------------------------------------------------------------
APT_PACKAGES=(clang libelf-dev zlib1g-dev pkg-config make gcc libc6-dev strace openssl ca-certificates)
command -v node >/dev/null || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null || APT_PACKAGES+=(npm)
command -v "${MCPSPY_PYTHON:-python3}" >/dev/null || APT_PACKAGES+=(python3)
# Go (Debian's 1.19) builds the Go test peers (tests/peers/go): crypto/tls over HTTP/2.
command -v go >/dev/null || APT_PACKAGES+=(golang-go)

install_apt "${APT_PACKAGES[@]}"

command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] ||
    die "cargo not found: the Rust toolchain comes with the machine (rustup), it cannot be installed here"

# --- Python venv -------------------------------------------------------------------------------
PYTHON="${MCPSPY_PYTHON:-python3}"
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$PYTHON is $PY_VERSION; the mcp SDK needs >= 3.10"
LOCK="$PEERS/requirements.lock"
PY_STAMP_WANT="$(cat "$LOCK" | sha256sum | cut -c1-64) python $PY_VERSION"
PY_STAMP="$VENV/.mcpspy-setup-stamp"

if [ -x "$VENV/bin/python3" ] && [ "$(cat "$PY_STAMP" 2>/dev/null)" = "$PY_STAMP_WANT" ] &&
    "$VENV/bin/python3" -c 'import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ("mcp", "uvicorn", "httpx2", "duckdb", "chdb", "opentelemetry.proto", "grpc"))))' 2>/dev/null; then
    say "venv: ok ($VENV, python $PY_VERSION, $(grep '^mcp==' "$LOCK"))"
else
    if [ -x "$VENV/bin/python3" ] && [ "$("$VENV/bin/python3" -c 'import platform; print(platform.python_version())' 2>/dev/null)" != "$PY_VERSION" ]; then
        say "venv: python changed, recreating $VENV"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python3" ]; then
        say "venv: creating $VENV with $PYTHON ($PY_VERSION)"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            install_apt python3-venv
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    say "venv: installing $LOCK"
    "$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input -q -r "$LOCK"
    "$VENV/bin/python3" -c 'import mcp, uvicorn, httpx2, duckdb, chdb, opentelemetry.proto.collector.trace.v1.trace_service_pb2'
    printf '%s\n' "$PY_STAMP_WANT" >"$PY_STAMP"
    say "venv: ready ($(grep '^mcp==' "$LOCK"))"
fi

# --- npm packages ------------------------------------------------------------------------------
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old: the MCP SDK needs >= 18"
NODE_STAMP_WANT="$(sha256sum <"$NODE_DIR/package-lock.json" | cut -c1-64) node $(node --version)"
NODE_STAMP="$NODE_DIR/node_modules/.mcpspy-setup-stamp"
if [ "$(cat "$NODE_STAMP" 2>/dev/null)" = "$NODE_STAMP_WANT" ] &&
    [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/package.json" ]; then
    say "npm: ok ($NODE_DIR/node_modules, node $(node --version))"
else
    say "npm: npm ci in $NODE_DIR"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$NODE_STAMP_WANT" >"$NODE_STAMP"
    say "npm: ready ($(cd "$NODE_DIR" && node -p 'const fs = require("fs"); ["sdk", "server-everything"].map(p => { const d = "node_modules/@modelcontextprotocol/" + p; return p + "@" + JSON.parse(fs.readFileSync(d + "/package.json")).version; }).join(" ")'))"
fi

# --- TLS programs: Bun, Deno, Claude Code (optional) -----------------------------------------
TLS_DIR="$PEERS/tls-apps"
TLS_STAMP_WANT="$(sha256sum <"$TLS_DIR/package-lock.json" | cut -c1-64) node $(node --version)"
TLS_STAMP="$TLS_DIR/node_modules/.mcpspy-setup-stamp"
if [ "$(cat "$TLS_STAMP" 2>/dev/null)" = "$TLS_STAMP_WANT" ] && [ -x "$TLS_DIR/node_modules/bun/bin/bun.exe" ]; then
    say "npm: ok ($TLS_DIR/node_modules)"
else
    say "npm: npm ci in $TLS_DIR (Bun, Deno, Claude Code: about 600 MB)"
    (cd "$TLS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$TLS_STAMP_WANT" >"$TLS_STAMP"
fi
[ -x "$TLS_DIR/node_modules/@anthropic-ai/claude-code-linux-x64/claude" ] ||
    say "npm: Claude Code could not be installed: its recording test fails unless MCPSPY_SKIP_CLAUDE=1"

say "done"
