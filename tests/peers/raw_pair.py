#!/usr/bin/env python3
"""A tiny raw JSON-RPC client/server pair over stdio (no SDK) that writes each message in many small
writes and reads it in many small reads, so a message spans many syscalls on both sides.

    raw_pair.py --out DIR [--transport pipe|socketpair] [--write-chunk 7] [--read-chunk 5]
                [--sleep-ms 1] [--big 0]

The client spawns this same file with --serve as the server, on two pipes (or one socket pair as
the server's fds 0 and 1). The client sends initialize, notifications/initialized, tools/call
echo (ASCII, then unicode, whose multi-byte characters get split across writes), an optional
--big byte echo, then closes the server's stdin. The server answers each request with a response
written the same way. Both sides use os.read/os.write, one syscall each, and log:

  DIR/raw_client.jsonl, DIR/raw_server.jsonl
    start / message / summary lines as in wirelog.py (message text is the whole JSON line, no "\\n")
    syscall lines: {"event": "syscall", "op": "read"|"write", "fd", "len", "hex"}: exactly the bytes
    each call transferred, in order
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wirelog import WireLog  # noqa: E402

UNICODE_TEXT = "héllo ✓ 日本 🚀"


class ChunkedIO:
    def __init__(self, log: WireLog, rfd: int, wfd: int, write_chunk: int, read_chunk: int, sleep_s: float) -> None:
        self.log, self.rfd, self.wfd = log, rfd, wfd
        self.write_chunk, self.read_chunk, self.sleep_s = write_chunk, read_chunk, sleep_s
        self.buf = b""

    def _syscall(self, op: str, fd: int, data: bytes) -> None:
        self.log._write({"event": "syscall", "op": op, "fd": fd, "len": len(data), "hex": data.hex()})

    def send(self, text: str) -> None:
        self.log.message("sent", text)
        data = (text + "\n").encode("utf-8")
        while data:
            n = os.write(self.wfd, data[: self.write_chunk])
            self._syscall("write", self.wfd, data[:n])
            data = data[n:]
            if data and self.sleep_s:
                time.sleep(self.sleep_s)

    def recv(self) -> str | None:
        """The next line, read `read_chunk` bytes at a time; None at EOF."""
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, self.read_chunk)
            if not chunk:
                return None
            self._syscall("read", self.rfd, chunk)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode("utf-8")
        self.log.message("recv", text)
        return text


def serve(args: argparse.Namespace) -> int:
    log = WireLog(os.path.join(args.out, "raw_server.jsonl"), "server", args.transport)
    io = ChunkedIO(log, 0, 1, args.write_chunk, args.read_chunk, args.sleep_ms / 1000)
    while (line := io.recv()) is not None:
        msg = json.loads(line)
        if "id" not in msg:
            continue  # a notification
        if msg["method"] == "initialize":
            result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "mcpspy-raw-server", "version": "1.0.0"}}
        elif msg["method"] == "tools/call":
            result = {"content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}], "isError": False}
        else:
            io.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "Method not found"}},
                               separators=(",", ":")))
            continue
        io.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}, ensure_ascii=False, separators=(",", ":")))
    log.summary(ok=True)
    return 0


def client(args: argparse.Namespace) -> int:
    os.makedirs(args.out, exist_ok=True)
    log = WireLog(os.path.join(args.out, "raw_client.jsonl"), "client", args.transport)
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", "--out", args.out, "--transport", args.transport,
           "--timeout", str(args.timeout), "--write-chunk", str(args.write_chunk), "--read-chunk", str(args.read_chunk), "--sleep-ms", str(args.sleep_ms)]
    if args.transport == "pipe":
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert proc.stdin is not None and proc.stdout is not None
        rfd, wfd = proc.stdout.fileno(), proc.stdin.fileno()
        closer = proc.stdin.close
    else:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = subprocess.Popen(cmd, stdin=theirs, stdout=theirs)
        theirs.close()
        rfd = wfd = ours.fileno()
        closer = lambda: ours.shutdown(socket.SHUT_WR)  # noqa: E731
    log.peer({"role": "server", "pid": proc.pid})
    io = ChunkedIO(log, rfd, wfd, args.write_chunk, args.read_chunk, args.sleep_ms / 1000)
    texts = ["hello", UNICODE_TEXT] + (["x" * args.big] if args.big else [])
    requests = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                            "clientInfo": {"name": "mcpspy-raw-client", "version": "1.0.0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    requests += [{"jsonrpc": "2.0", "id": i + 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": t}}}
                 for i, t in enumerate(texts)]
    ok = True
    t0 = time.monotonic()
    for req in requests:
        io.send(json.dumps(req, ensure_ascii=False, separators=(",", ":")))
        if "id" in req:
            reply = io.recv()
            if reply is None or json.loads(reply).get("id") != req["id"]:
                ok = False
                break
            if req["method"] == "tools/call":
                ok &= json.loads(reply)["result"]["content"][0]["text"] == req["params"]["arguments"]["text"]
    closer()
    try:
        rc = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = -9
    ok &= rc == 0
    log.summary(ok=ok, seconds=round(time.monotonic() - t0, 3), server_exit=rc)
    print(f"raw_pair: {args.transport} {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.2f}s; logs: "
          f"{args.out}/raw_client.jsonl {args.out}/raw_server.jsonl", file=sys.stderr)
    return 0 if ok else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--transport", choices=["pipe", "socketpair"], default="pipe")
    p.add_argument("--write-chunk", type=int, default=7, help="bytes per write(2)")
    p.add_argument("--read-chunk", type=int, default=5, help="bytes per read(2)")
    p.add_argument("--sleep-ms", type=float, default=1.0, help="pause between the writes of one message")
    p.add_argument("--big", type=int, default=0, help="also echo a text of this many bytes")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write_chunk < 1 or args.read_chunk < 1:
        p.error("chunk sizes must be >= 1")
    signal.alarm(int(args.timeout) + 1)  # a bounded run even if the other side hangs
    sys.exit(serve(args) if args.serve else client(args))


if __name__ == "__main__":
    main()
