#!/usr/bin/env python3
"""Ground truth, independent of mcpspy, of every byte a process tree read and wrote on pipes and sockets.

    syscall_truth.py run --out DIR [--keep-raw] [--strsize N] -- COMMAND [ARGS...]
    syscall_truth.py parse DIR

`run` executes COMMAND under strace (-f, so its children too) and exits with COMMAND's exit code.
strace stops each traced thread at every read/write/readv/writev/sendto/recvfrom/sendmsg/recvmsg
and prints the data the call really transferred: the buffer up to the call's return value. The
parser keeps the calls on pipes and sockets and writes:

  DIR/truth.json     processes (tgid -> comms, threads, parent, exe, argv) and one entry per stream
                     (tgid, target such as "pipe:[123]" or "UNIX-STREAM:[5->6]", kind, inode,
                     peer_inode, direction read|write, fds, bytes, syscalls, file)
  DIR/streams/N.bin  the stream's bytes: each call's data, concatenated in completion order
  DIR/syscalls.jsonl one line per call with data: seq, t, tid, tgid, comm, syscall, fd, target,
                     direction, ret, stream, offset (in that stream's file)

A stream is one direction of one open file (a pipe or socket, named by its inode) in one process,
whatever fd numbers it had: the Python SDK's stdio_server dups fds 0/1 above 2 before using them.
comm is the calling thread's name as the kernel has it, which is what eBPF's bpf_get_current_comm()
sees: inherited at clone, the executable's basename (15 bytes at most) at execve, changed by
prctl(PR_SET_NAME). Failed calls (EAGAIN) carry no data and are left out.
Regular files, ttys and /dev/null are left out, so are strace's own reads of its tracees.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any, BinaryIO

DATA_SYSCALLS = {
    "read": "read", "readv": "read", "recvfrom": "read", "recvmsg": "read",
    "write": "write", "writev": "write", "sendto": "write", "sendmsg": "write",
}
PROC_SYSCALLS = {"clone", "clone3", "fork", "vfork", "execve", "prctl"}
TRACED = sorted(set(DATA_SYSCALLS) | PROC_SYSCALLS)
DEFAULT_STRSIZE = 64 * 1024 * 1024

LINE_RE = re.compile(rb"^(\d+) +(\d+\.\d+) (.*)$", re.S)  # strace pads short pids
RESUMED_RE = re.compile(rb"^<\.\.\. ([a-z0-9_]+) resumed>(.*)$", re.S)
CALL_RE = re.compile(rb"^([a-z0-9_]+)\((.*)$", re.S)
UNFINISHED = b" <unfinished ...>"


class TruthError(Exception):
    pass


def strace_command(out: str, strsize: int, command: list[str]) -> list[str]:
    return [
        "strace", "-f", "-qq", "--seccomp-bpf", "-yy", "-x", "-v", "-ttt",
        "-s", str(strsize), "-e", "signal=none", "-e", "trace=" + ",".join(TRACED),
        "-o", os.path.join(out, "strace.txt"), "--", *command,
    ]


def unquote(buf: bytes, start: int) -> tuple[bytes, int]:
    """Decode the C string literal strace printed at buf[start] (a '"'); return it and the index after it."""
    assert buf[start:start + 1] == b'"'
    i = start + 1
    while True:
        j = buf.find(b'"', i)
        if j < 0:
            raise TruthError("unterminated string in strace output")
        k = j
        while buf[k - 1:k] == b"\\":
            k -= 1
        if (j - k) % 2 == 0:
            break
        i = j + 1
    raw = buf[start + 1:j]
    data = codecs.escape_decode(raw)[0] if b"\\" in raw else raw
    end = j + 1
    if buf[end:end + 3] == b"...":
        raise TruthError("strace truncated a buffer: raise --strsize")
    return data, end


def strings_after(buf: bytes, pos: int, only_iov: bool) -> list[bytes]:
    """The string literals in buf from pos on (only those after 'iov_base=' if only_iov)."""
    out = []
    marker = b'iov_base="' if only_iov else b'"'
    while True:
        i = buf.find(marker, pos)
        if i < 0:
            return out
        i += len(marker) - 1
        data, pos = unquote(buf, i)
        out.append(data)
        if not only_iov:
            return out


def split_fd(args: bytes) -> tuple[int, str, int]:
    """'7<UNIX-STREAM:[1->2]>, ...' -> (7, 'UNIX-STREAM:[1->2]', index after the annotation)."""
    m = re.match(rb"(-?\d+)", args)
    if not m:
        raise TruthError(f"no fd in {args[:60]!r}")
    fd = int(m.group(1))
    i = m.end()
    if args[i:i + 1] != b"<":
        return fd, "", i
    # The annotation may hold '>' ("UNIX-STREAM:[1->2]") and nested <...> ("/dev/null<char 1:3>"):
    # it ends at the first '>' that is followed by the next argument or the closing parenthesis.
    ends = [j for j in (args.find(b">, ", i), args.find(b">)", i)) if j >= 0]
    if not ends:
        raise TruthError(f"unterminated fd annotation in {args[:60]!r}")
    j = min(ends)
    target = args[i + 1:j]
    if b"\\x" in target:
        target = codecs.escape_decode(target)[0]
    return fd, target.decode("utf-8", "replace"), j + 1


def classify_target(target: str) -> tuple[str, int | None, int | None]:
    m = re.fullmatch(r"pipe:\[(\d+)\]", target)
    if m:
        return "pipe", int(m.group(1)), None
    m = re.fullmatch(r"(UNIX(?:-STREAM|-DGRAM|-SEQPACKET)?):\[(\d+)(?:->(\d+))?(?:,.*)?\]", target)
    if m:
        return "unix", int(m.group(2)), int(m.group(3)) if m.group(3) else None
    m = re.fullmatch(r"(TCP|TCPv6|UDP|UDPv6):\[(.*)\]", target)
    if m:
        return m.group(1).lower().replace("v6", ""), None, None
    m = re.fullmatch(r"socket:\[(\d+)\]", target)
    if m:
        return "socket", int(m.group(1)), None
    return "other", None, None


class Parser:
    def __init__(self, out: str) -> None:
        self.out = out
        self.pending: dict[int, bytes] = {}
        self.tgid_of: dict[int, int] = {}
        # The kernel's comm of each thread: inherited at clone, basename of the file at execve (16
        # bytes with the NUL), changed by prctl(PR_SET_NAME). strace -Y shows stale names after a
        # vfork+execve, so it is tracked here instead.
        self.comm_of: dict[int, str] = {}
        self.processes: dict[int, dict[str, Any]] = {}
        self.streams: dict[tuple[int, str, str], dict[str, Any]] = {}
        self.files: dict[int, BinaryIO] = {}
        self.seq = 0
        self.root: int | None = None
        shutil.rmtree(os.path.join(out, "streams"), ignore_errors=True)
        os.makedirs(os.path.join(out, "streams"))
        self.calls = open(os.path.join(out, "syscalls.jsonl"), "w")

    def process(self, tgid: int) -> dict[str, Any]:
        if tgid not in self.processes:
            self.processes[tgid] = {"tgid": tgid, "parent": None, "threads": [tgid], "comms": [], "exe": None,
                                    "argv": None}
        return self.processes[tgid]

    def tgid(self, tid: int) -> int:
        if tid not in self.tgid_of:
            if self.root is None:
                self.root = tid
            self.tgid_of[tid] = tid
            self.process(tid)
        return self.tgid_of[tid]

    def feed(self, line: bytes) -> None:
        m = LINE_RE.match(line)
        if not m:
            return  # "+++ exited", "--- SIG", "???" lines: nothing to do
        tid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
        tgid = self.tgid(tid)
        if rest.endswith(UNFINISHED):
            self.pending[tid] = rest[: -len(UNFINISHED)]
            return
        r = RESUMED_RE.match(rest)
        if r:
            head = self.pending.pop(tid, None)
            if head is None:
                raise TruthError(f"resumed call without its start: {line[:120]!r}")
            rest = head + r.group(2)
        c = CALL_RE.match(rest)
        if not c:
            return
        name = c.group(1).decode()
        args = c.group(2)
        ret_s = args.rsplit(b") = ", 1)
        if len(ret_s) != 2:
            return  # a call that never returned (the process died in it)
        args, ret_part = ret_s
        rm = re.match(rb"(-?\d+)", ret_part)
        if not rm:
            return
        ret = int(rm.group(1))
        if name in PROC_SYSCALLS:
            self.proc_call(name, tid, tgid, args, ret)
        elif name in DATA_SYSCALLS and ret > 0:
            self.data_call(name, tid, tgid, self.comm_of.get(tid, "?"), ts, args, ret)

    def set_comm(self, tid: int, tgid: int, comm: str) -> None:
        self.comm_of[tid] = comm
        comms = self.process(tgid)["comms"]
        if comm not in comms:
            comms.append(comm)

    def proc_call(self, name: str, tid: int, tgid: int, args: bytes, ret: int) -> None:
        if name == "prctl":
            if ret == 0 and args.startswith(b"PR_SET_NAME, "):
                self.set_comm(tid, tgid, unquote(args, len(b"PR_SET_NAME, "))[0][:15].decode("utf-8", "replace"))
            return
        if name == "execve":
            if ret == 0:
                proc = self.process(tgid)
                proc["exe"] = unquote(args, 0)[0].decode("utf-8", "replace")
                argv_at = args.find(b"[")
                argv = []
                pos = argv_at + 1
                while args[pos:pos + 1] == b'"':
                    s, pos = unquote(args, pos)
                    argv.append(s.decode("utf-8", "replace"))
                    if args[pos:pos + 2] == b", ":
                        pos += 2
                proc["argv"] = argv
                proc["comms"] = []
                self.set_comm(tid, tgid, os.path.basename(proc["exe"].encode())[:15].decode("utf-8", "replace"))
            return
        if ret <= 0:
            return
        if name in ("clone", "clone3") and b"CLONE_THREAD" in args:
            self.tgid_of[ret] = tgid
            self.process(tgid)["threads"].append(ret)
            child_tgid = tgid
        else:
            self.tgid_of[ret] = ret
            child = self.process(ret)
            child["parent"] = tgid
            child_tgid = ret
        if tid in self.comm_of:
            self.set_comm(ret, child_tgid, self.comm_of[tid])

    def data_call(self, name: str, tid: int, tgid: int, comm: str, ts: float, args: bytes, ret: int) -> None:
        fd, target, pos = split_fd(args)
        kind, inode, peer = classify_target(target)
        if kind == "other":
            return
        vectored = name in ("readv", "writev", "sendmsg", "recvmsg")
        data = b"".join(strings_after(args, pos, only_iov=vectored))
        if len(data) < ret:
            raise TruthError(f"{name} returned {ret} but strace showed {len(data)} bytes (raise --strsize)")
        data = data[:ret]
        direction = DATA_SYSCALLS[name]
        key = (tgid, target, direction)
        st = self.streams.get(key)
        if st is None:
            sid = len(self.streams)
            st = {"id": sid, "tgid": tgid, "target": target, "kind": kind, "inode": inode, "peer_inode": peer,
                  "direction": direction, "fds": [], "comms": [], "bytes": 0, "syscalls": 0,
                  "file": f"streams/{sid}.bin", "first_t": ts, "last_t": ts}
            self.streams[key] = st
            self.files[sid] = open(os.path.join(self.out, st["file"]), "wb")
        if fd not in st["fds"]:
            st["fds"].append(fd)
        if comm not in st["comms"]:
            st["comms"].append(comm)
        self.seq += 1
        self.calls.write(json.dumps({"seq": self.seq, "t": ts, "tid": tid, "tgid": tgid, "comm": comm,
                                     "syscall": name, "fd": fd, "target": target, "direction": direction,
                                     "ret": ret, "stream": st["id"], "offset": st["bytes"]}) + "\n")
        self.files[st["id"]].write(data)
        st["bytes"] += ret
        st["syscalls"] += 1
        st["last_t"] = ts

    def finish(self, command: list[str] | None) -> dict[str, Any]:
        for f in self.files.values():
            f.close()
        self.calls.close()
        truth = {"root_tgid": self.root, "command": command,
                 "processes": {str(k): v for k, v in sorted(self.processes.items())},
                 "streams": sorted(self.streams.values(), key=lambda s: s["id"])}
        with open(os.path.join(self.out, "truth.json"), "w") as f:
            json.dump(truth, f, indent=1)
            f.write("\n")
        return truth


def parse(out: str, command: list[str] | None = None) -> dict[str, Any]:
    parser = Parser(out)
    with open(os.path.join(out, "strace.txt"), "rb") as f:
        for line in f:
            parser.feed(line.rstrip(b"\n"))
    return parser.finish(command)


def describe(truth: dict[str, Any]) -> str:
    lines = []
    for s in truth["streams"]:
        if s["kind"] in ("pipe", "unix", "tcp", "tcpv6") and s["bytes"] > 1:
            lines.append(f"  stream {s['id']}: pid {s['tgid']} ({'/'.join(s['comms'])}) {s['direction']:5} "
                         f"{s['target']} fds {s['fds']}: {s['bytes']} bytes in {s['syscalls']} calls")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a command under strace, then parse")
    r.add_argument("--out", required=True)
    r.add_argument("--strsize", type=int, default=DEFAULT_STRSIZE, help="largest single call recorded whole")
    r.add_argument("--keep-raw", action="store_true", help="keep DIR/strace.txt (large)")
    r.add_argument("command", nargs=argparse.REMAINDER)
    q = sub.add_parser("parse", help="(re)parse DIR/strace.txt")
    q.add_argument("dir")
    args = p.parse_args()
    if args.cmd == "parse":
        truth = parse(args.dir)
        print(describe(truth))
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given")
    if shutil.which("strace") is None:
        sys.exit("syscall_truth: strace is not installed (scripts/setup.sh installs it)")
    os.makedirs(args.out, exist_ok=True)
    rc = subprocess.call(strace_command(args.out, args.strsize, command))
    truth = parse(args.out, command)
    if not args.keep_raw:
        os.unlink(os.path.join(args.out, "strace.txt"))
    print(f"syscall_truth: exit {rc}; {len(truth['streams'])} streams in {args.out}/truth.json\n{describe(truth)}",
          file=sys.stderr)
    sys.exit(rc)


if __name__ == "__main__":
    main()
