#!/usr/bin/env python3
"""Runs every stdio peer scenario under syscall_truth.py and checks the peers' own logs against the
kernel-level ground truth, so the logs that mcpspy's tests compare with are known to be exact.

    .venv/bin/python3 tests/peers/selfcheck.py [--out DIR] [--quick] [CASE...]

For each case: the bytes the client wrote towards the server, the bytes the server read, and the
client's logged sent messages (each + "\\n") must be identical; likewise the other way. raw_pair
cases also match each logged read/write call to the traced one. Prints the runtime of each case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = os.path.join(ROOT, ".venv", "bin", "python3")
TRUTH = [sys.executable, os.path.join(HERE, "syscall_truth.py"), "run"]

CASES = {
    "py-stdio-auto": ([PY, f"{HERE}/py_client.py"], "client.jsonl"),
    "py-stdio-legacy": ([PY, f"{HERE}/py_client.py", "--mode", "legacy"], "client.jsonl"),
    "py-stdio-big": ([PY, f"{HERE}/py_client.py", "--mode", "legacy", "--blob", "1048576", "--blob", "16777216"],
                     "client.jsonl"),
    "py-socketpair": ([PY, f"{HERE}/py_client.py", "--transport", "socketpair", "--mode", "legacy"], "client.jsonl"),
    "raw-pipe": ([PY, f"{HERE}/raw_pair.py"], "raw_client.jsonl"),
    "raw-socketpair": ([PY, f"{HERE}/raw_pair.py", "--transport", "socketpair", "--big", "2000"], "raw_client.jsonl"),
    "node-stdio": (["node", f"{HERE}/node_client.mjs", "--echo-size", "1048576"], "node_client.jsonl"),
}
HTTP = [PY, f"{HERE}/http_session.py"]
HTTP_CASES = {
    "py-http-sse": ([*HTTP, "--peers", "py", "--blob", "1048576"], "client.jsonl"),
    "py-http-json-legacy": ([*HTTP, "--peers", "py", "--json-response", "--mode", "legacy", "--blob", "1048576"],
                            "client.jsonl"),
    "py-legacy-sse": ([*HTTP, "--peers", "py", "--transport", "sse", "--mode", "legacy", "--blob", "1048576"],
                      "client.jsonl"),
    "py-https": ([*HTTP, "--peers", "py", "--tls", "--blob", "1048576"], "client.jsonl"),
    "py-https-legacy-sse": ([*HTTP, "--peers", "py", "--tls", "--transport", "sse", "--mode", "legacy"],
                            "client.jsonl"),
    "node-http": ([*HTTP, "--peers", "node", "--echo-size", "1048576"], "node_client.jsonl"),
    "node-https": ([*HTTP, "--peers", "node", "--tls", "--echo-size", "1048576"], "node_client.jsonl"),
}
CASES.update(HTTP_CASES)
QUICK = ["py-stdio-auto", "py-stdio-legacy", "py-socketpair", "raw-pipe", "raw-socketpair", "node-stdio",
         "py-http-sse", "py-https", "node-http"]


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def stream_bytes(out: str, stream: dict) -> bytes:
    with open(os.path.join(out, stream["file"]), "rb") as f:
        return f.read()


def same_channel(w: dict, r: dict) -> bool:
    """A write stream in one process and a read stream in another are the two ends of one channel."""
    if w["kind"] != r["kind"]:
        return False
    if w["kind"] == "pipe":
        return w["inode"] == r["inode"]
    if w["kind"] == "unix":
        return w["peer_inode"] == r["inode"] and r["peer_inode"] == w["inode"]
    return False


def channel(truth: dict, writer: int, reader: int) -> tuple[dict, dict]:
    found = [(w, r) for w in truth["streams"] for r in truth["streams"]
             if w["tgid"] == writer and r["tgid"] == reader and w["direction"] == "write"
             and r["direction"] == "read" and same_channel(w, r)]
    if len(found) != 1:
        raise AssertionError(f"expected one channel {writer} -> {reader}, found {len(found)}")
    return found[0]


def check_http(name: str, truth: dict, out: str, client: int, server: int, messages: list[dict]) -> list[str]:
    """Plain HTTP: every logged message under 64 KiB is in the TCP bytes of its direction, verbatim
    (bigger ones may be cut by chunked encoding). TLS: none is (the bytes are ciphertext)."""
    problems = []
    tcp = [s for s in truth["streams"] if s["kind"] == "tcp" and s["tgid"] == client]
    conns = len({s["target"] for s in tcp})
    wire = {d: b"\n".join(stream_bytes(out, s) for s in tcp if s["direction"] == d) for d in ("write", "read")}
    tls = "https" in name
    small = [m for m in messages if m["bytes"] < 65536]
    found = sum(m["text"].encode() in wire["write" if m["dir"] == "sent" else "read"] for m in small)
    if tls and found:
        problems.append(f"{found} messages in clear on a TLS connection")
    if not tls and found != len(small):
        problems.append(f"only {found} of {len(small)} logged messages found verbatim in the TCP bytes")
    if not any(s["tgid"] == server for s in truth["streams"] if s["kind"] == "tcp"):
        problems.append("no TCP data seen in the server process")
    print(f"  http: {len(messages)} messages, {conns} client TCP connections, {sum(map(len, wire.values()))} TCP bytes, "
          f"{found}/{len(small)} small messages verbatim on the wire")
    return problems


def check_case(name: str, out: str) -> list[str]:
    problems: list[str] = []
    truth = json.load(open(os.path.join(out, "truth.json")))
    log = read_jsonl(os.path.join(out, CASES[name][1]))
    start = next(x for x in log if x["event"] == "start")
    peer = next(x for x in log if x["event"] == "peer")
    summary = log[-1]
    if summary.get("event") != "summary" or not summary.get("ok"):
        problems.append("the client's summary is missing or not ok")
    client, server = start["pid"], peer["pid"]
    for pid, who in ((client, start), (server, peer)):
        proc = truth["processes"].get(str(pid))
        if proc is None:
            problems.append(f"pid {pid} not in the trace")
        elif who.get("comm") and who["comm"] not in proc["comms"]:
            problems.append(f"pid {pid}: logged comm {who['comm']!r}, kernel comms {proc['comms']}")
    messages = [x for x in log if x["event"] == "message"]
    if name in HTTP_CASES:
        return problems + check_http(name, truth, out, client, server, messages)
    for direction, (a, b) in (("sent", (client, server)), ("recv", (server, client))):
        w, r = channel(truth, a, b)
        wb, rb = stream_bytes(out, w), stream_bytes(out, r)
        logged = b"".join(m["text"].encode("utf-8") + b"\n" for m in messages if m["dir"] == direction)
        if wb != rb:
            problems.append(f"{direction}: writer wrote {len(wb)} bytes, reader read {len(rb)}")
        if logged != wb:
            problems.append(f"{direction}: log has {len(logged)} bytes, the wire {len(wb)}")
        print(f"  {direction:4}: {len(wb):>9} bytes, {w['syscalls']:>4} writes by {a} ({w['target']}, fds {w['fds']}), "
              f"{r['syscalls']:>4} reads by {b} (fds {r['fds']})")
        if name.startswith("raw-"):
            for side, st, pid in (("client", w if direction == "sent" else r, client),
                                  ("server", r if direction == "sent" else w, server)):
                logf = "raw_client.jsonl" if side == "client" else "raw_server.jsonl"
                calls = [x for x in read_jsonl(os.path.join(out, logf)) if x["event"] == "syscall"
                         and x["op"] == st["direction"]]
                traced = [c for c in read_jsonl(os.path.join(out, "syscalls.jsonl")) if c["stream"] == st["id"]]
                if [c["len"] for c in calls] != [c["ret"] for c in traced]:
                    problems.append(f"{side} {st['direction']}: logged call sizes differ from the trace")
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="keep the outputs here (default: a temporary directory)")
    p.add_argument("--quick", action="store_true", help="a shorter list: no 16 MiB, fewer HTTP variants")
    p.add_argument("cases", nargs="*", help="cases to run: " + ", ".join(CASES))
    args = p.parse_args()
    cases = args.cases or (QUICK if args.quick else list(CASES))
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    base = args.out or tempfile.mkdtemp(prefix="mcpspy-peers-")
    failed = 0
    for name in cases:
        out = os.path.join(base, name)
        cmd, _ = CASES[name]
        t0 = time.monotonic()
        rc = subprocess.call([*TRUTH, "--out", out, "--", *cmd, "--out", out], stderr=subprocess.DEVNULL)
        elapsed = time.monotonic() - t0
        print(f"{name}: exit {rc} in {elapsed:.2f}s (under strace)")
        problems = [f"exit code {rc}"] if rc else []
        try:
            problems += check_case(name, out)
        except (AssertionError, OSError, StopIteration, ValueError) as e:
            problems.append(f"{type(e).__name__}: {e}")
        for pr in problems:
            print(f"  PROBLEM: {pr}")
        failed += bool(problems)
    print(f"selfcheck: {len(cases) - failed} passed, {failed} failed; outputs in {base}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
