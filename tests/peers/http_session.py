#!/usr/bin/env python3
"""One whole HTTP MCP session between real peers: start a server on 127.0.0.1, run a client
scenario against it, stop the server. Exits with the client's exit code.

    http_session.py --out DIR --peers py|node [--transport http|sse] [--json-response] [--tls]
                    [--mode auto|legacy] [--blob N ...] [--echo-size N] [--timeout S] [--http2]

  --peers py    tests/peers/py_server.py under uvicorn + tests/peers/py_client.py (Python SDK)
                --transport http: Streamable HTTP (SSE responses, or JSON with --json-response)
                --transport sse:  the deprecated HTTP+SSE transport
  --peers node  tests/peers/node_server.mjs (server-everything, streamableHttp mode)
                + tests/peers/node_client.mjs (Node SDK, Streamable HTTP)
  --http2       (py, with --tls) the server under hypercorn and the client on httpx2 with HTTP/2 on:
                the session runs over h2
  --tls         a self-signed certificate for 127.0.0.1 is made in DIR/tls (openssl); both sides
                then speak https (Python: the system libssl.so.3; node: its built-in OpenSSL)

DIR gets server.info.json (the server's pid, comm and URL), the client's log (client.jsonl or
node_client.jsonl) and server.stderr. Run it under syscall_truth.py to also record what both
processes wrote and read on their TCP sockets (ciphertext under --tls).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = os.path.join(ROOT, ".venv", "bin", "python3")


def wait_for_info(path: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        if proc.poll() is not None:
            raise SystemExit(f"http_session: the server exited early with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"http_session: no {path} after {timeout}s")


def stop(proc: subprocess.Popen, sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--peers", choices=["py", "node"], default="py")
    p.add_argument("--transport", choices=["http", "sse"], default="http")
    p.add_argument("--json-response", action="store_true")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--mode", default="auto", help="py client: auto or legacy")
    p.add_argument("--blob", type=int, action="append", help="py client: blob sizes (repeatable)")
    p.add_argument("--echo-size", type=int, default=0, help="node client: also echo this many bytes")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--http2", action="store_true")
    args = p.parse_args()
    if args.http2 and (args.peers != "py" or not args.tls or args.transport != "http"):
        p.error("--http2 runs the Python peers' Streamable HTTP over TLS (--peers py --tls)")
    if args.peers == "node" and (args.transport != "http" or args.json_response):
        p.error("server-everything is driven over Streamable HTTP with SSE responses only")

    os.makedirs(args.out, exist_ok=True)
    info_path = os.path.join(args.out, "server.info.json")
    if os.path.exists(info_path):
        os.unlink(info_path)
    tls: list[str] = []
    cafile = None
    if args.tls:
        tls_dir = os.path.join(args.out, "tls")
        subprocess.run([os.path.join(HERE, "make_cert.sh"), tls_dir], check=True, stdout=subprocess.DEVNULL)
        cafile = os.path.join(tls_dir, "cert.pem")
        tls = ["--certfile", cafile, "--keyfile", os.path.join(tls_dir, "key.pem")]

    if args.peers == "py":
        server_cmd = [PY, os.path.join(HERE, "py_server.py"), "--transport", args.transport, "--info", info_path, *tls]
        if args.json_response:
            server_cmd.append("--json-response")
        if args.http2:
            server_cmd.append("--http2")
        stop_signal = signal.SIGTERM
    else:
        server_cmd = ["node", os.path.join(HERE, "node_server.mjs"), "--info", info_path, *tls]
        stop_signal = signal.SIGINT  # server-everything closes its sessions on SIGINT
    with open(os.path.join(args.out, "server.stderr"), "wb") as errlog:
        server = subprocess.Popen(server_cmd, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog)
    try:
        info = wait_for_info(info_path, server, 30)
        if args.peers == "py":
            client_cmd = [PY, os.path.join(HERE, "py_client.py"), "--out", args.out, "--transport", args.transport,
                          "--url", info["url"], "--server-info", info_path, "--mode", args.mode,
                          "--timeout", str(args.timeout)]
            for size in args.blob or []:
                client_cmd += ["--blob", str(size)]
            if args.http2:
                client_cmd.append("--http2")
        else:
            client_cmd = ["node", os.path.join(HERE, "node_client.mjs"), "--out", args.out, "--transport", "http",
                          "--url", info["url"], "--server-info", info_path, "--timeout", str(args.timeout),
                          "--echo-size", str(args.echo_size)]
        if cafile:
            client_cmd += ["--cafile", cafile]
        try:
            rc = subprocess.call(client_cmd, timeout=args.timeout + 10)
        except subprocess.TimeoutExpired:
            rc = 124
    finally:
        server_rc = stop(server, stop_signal)
    print(f"http_session: {args.peers} {args.transport}{' json' if args.json_response else ''}"
          f"{' tls' if args.tls else ''}{' h2' if args.http2 else ''}: client exit {rc}, server exit {server_rc}; outputs in {args.out}",
          file=sys.stderr)
    sys.exit(rc)


if __name__ == "__main__":
    main()
