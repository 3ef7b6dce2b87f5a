"""Writes one JSON-RPC line every --interval-ms to a pipe that a child reads,
for --seconds; prints "writer PID" and "reader PID" first, then one line
"sent ID MONOTONIC_NS" per message, flushed, so a test knows what left when."""
import argparse, json, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=4)
ap.add_argument("--interval-ms", type=float, default=20)
ap.add_argument("--name", default=None, help="set this process's comm (prctl)")
a = ap.parse_args()

if a.name:
    import ctypes
    ctypes.CDLL(None).prctl(15, a.name.encode(), 0, 0, 0)  # PR_SET_NAME
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(w)
    while os.read(r, 65536):
        pass
    os._exit(0)
os.close(r)
print("writer", os.getpid(), flush=True)
print("reader", child, flush=True)
end = time.monotonic() + a.seconds
i = 0
while time.monotonic() < end:
    os.write(w, (json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}) + "\n").encode())
    print("sent", i, time.monotonic_ns(), flush=True)
    i += 1
    time.sleep(a.interval_ms / 1000)
os.close(w)
os.waitpid(child, 0)
