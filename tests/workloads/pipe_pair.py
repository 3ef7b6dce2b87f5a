"""A writer and a reader joined by a pipe (or a unix socket pair), with
exactly known bytes. Ground truth for the recorder tests: each side saves what
its read()/write() calls moved, and prints its pid.

usage: pipe_pair.py OUTDIR [--socketpair] [--write-chunk N] [--read-chunk N]
                           [--pause-ms N] [--message-bytes N ...] [--name COMM]
                           [--close-before-last]
Each message is one JSON-RPC line; --message-bytes sets the size of its text
field. Writes go out in --write-chunk pieces (0: one call per message), and
reads take --read-chunk bytes at a time. With --close-before-last the reader
stops halfway through the last message until the writer has closed its end,
then reads the rest: reads that begin inside a message, with the peer gone.
"""
import argparse, json, os, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("outdir")
ap.add_argument("--socketpair", action="store_true")
ap.add_argument("--write-chunk", type=int, default=0)
ap.add_argument("--read-chunk", type=int, default=65536)
ap.add_argument("--pause-ms", type=int, default=0)
ap.add_argument("--message-bytes", type=int, nargs="*", default=[100])
ap.add_argument("--name", help="set the process name (comm) of both sides")
ap.add_argument("--close-before-last", action="store_true")
a = ap.parse_args()

if a.name:
    import ctypes
    ctypes.CDLL(None).prctl(15, a.name.encode(), 0, 0, 0)  # PR_SET_NAME

messages = b"".join(
    (json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                 "params": {"name": "echo", "arguments": {"text": "é" * 3 + "x" * n}}},
                ensure_ascii=False) + "\n").encode()
    for i, n in enumerate(a.message_bytes))

if a.socketpair:
    s_w, s_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    w, r = s_w.fileno(), s_r.fileno()
else:
    r, w = os.pipe()

lines = messages.splitlines(keepends=True)
# Bytes the reader takes before the writer closes its end.
before_close = len(messages) - len(lines[-1]) // 2 if a.close_before_last else len(messages)
# Not JSON, so never captured: "got the first part" and "closed".
ack_r, ack_w = os.pipe()
closed_r, closed_w = os.pipe()

child = os.fork()
if child == 0:
    # reader
    if a.socketpair:
        s_w.close()
    else:
        os.close(w)
    got = bytearray()

    def read_upto(limit):
        while len(got) < limit:
            b = os.read(r, min(a.read_chunk, limit - len(got)))
            if not b:
                return
            got.extend(b)

    read_upto(before_close)
    if a.close_before_last:
        os.write(ack_w, b"x")
        os.read(closed_r, 1)
        read_upto(len(messages))
    open(os.path.join(a.outdir, "read.bin"), "wb").write(got)
    print("reader", os.getpid(), len(got), flush=True)
    os._exit(0)

if a.socketpair:
    s_r.close()
else:
    os.close(r)
step = a.write_chunk or len(messages)
sent = 0
if a.write_chunk:
    pos = 0
    while pos < len(messages):
        n = os.write(w, messages[pos:pos + step])
        pos += n
        if a.pause_ms:
            time.sleep(a.pause_ms / 1000)
else:
    pos = 0
    for line in lines:
        view = memoryview(line)
        while view:
            n = os.write(w, view)
            view = view[n:]
        pos += len(line)
if a.close_before_last:
    os.read(ack_r, 1)
    (s_w.close if a.socketpair else lambda: os.close(w))()
    os.write(closed_w, b"x")
open(os.path.join(a.outdir, "write.bin"), "wb").write(messages)
os.waitpid(child, 0)
print("writer", os.getpid(), pos, flush=True)
