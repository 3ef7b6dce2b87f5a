"""The JSONL message log the Python peers write: one line per JSON-RPC message as it was on the wire.

Line kinds (field "event"):
  start    who this process is: pid, comm (from /proc/PID/comm, as the kernel names it), argv
  peer     the other side, once known: pid, comm and whatever the server reported about itself
  message  seq, t (unix seconds), dir ("sent" | "recv"), transport, text (the exact JSON text
           without framing), bytes (len of text in UTF-8), kind (request | notification |
           response | error | batch | invalid), method, id. Responses and errors carry the method
           of the request they answer, looked up by id among the requests that went the other way.
  summary  counts by (dir, kind, method), totals, the scenario's outcome
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any


def proc_comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().rstrip("\n")


def classify(obj: Any) -> tuple[str, str | None, Any]:
    if isinstance(obj, list):
        return "batch", None, None
    if not isinstance(obj, dict):
        return "invalid", None, None
    if "method" in obj:
        return ("request" if "id" in obj else "notification"), obj["method"], obj.get("id")
    if "error" in obj:
        return "error", None, obj.get("id")
    if "result" in obj:
        return "response", None, obj.get("id")
    return "invalid", None, obj.get("id")


class WireLog:
    def __init__(self, path: str, role: str, transport: str) -> None:
        self.path = path
        self.transport = transport
        self._f = open(path, "w", encoding="utf-8")
        self._seq = 0
        # id -> method of requests in flight, keyed by the direction the request went.
        self._pending: dict[str, dict[str, str]] = {"sent": {}, "recv": {}}
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.bytes_by_dir: Counter[str] = Counter()
        self._write({"event": "start", "role": role, "pid": os.getpid(), "comm": proc_comm(os.getpid()),
                     "argv": sys.argv, "transport": transport, "t": time.time()})

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._f.flush()

    def peer(self, info: dict[str, Any]) -> None:
        self._write({"event": "peer", **info})

    def message(self, direction: str, text: str) -> None:
        assert direction in ("sent", "recv")
        try:
            obj = json.loads(text)
            kind, method, msg_id = classify(obj)
        except ValueError:
            kind, method, msg_id = "invalid", None, None
        if kind == "request":
            self._pending[direction][json.dumps(msg_id)] = method
        elif kind in ("response", "error"):
            other = "recv" if direction == "sent" else "sent"
            method = self._pending[other].pop(json.dumps(msg_id), None)
        self._seq += 1
        size = len(text.encode("utf-8"))
        self.counts[(direction, kind, method or "")] += 1
        self.bytes_by_dir[direction] += size
        self._write({"event": "message", "seq": self._seq, "t": time.time(), "dir": direction,
                     "transport": self.transport, "kind": kind, "method": method, "id": msg_id,
                     "bytes": size, "text": text})

    def summary(self, **extra: Any) -> dict[str, Any]:
        rows = [{"dir": d, "kind": k, "method": m or None, "count": n}
                for (d, k, m), n in sorted(self.counts.items())]
        out = {"event": "summary", "messages": self._seq, "by_method": rows,
               "bytes": dict(self.bytes_by_dir),
               "unanswered": {d: sorted(p.values()) for d, p in self._pending.items()}, **extra}
        self._write(out)
        self._f.close()
        return out
