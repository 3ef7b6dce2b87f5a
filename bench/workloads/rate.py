"""A writer sends 1 KiB JSON-RPC notifications to a reader over a pipe at a
paced rate (0 = as fast as it can) for a while; prints what it achieved.

usage: rate.py --rate MSGS_PER_S --seconds S [--size BYTES]
"""
import argparse, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--rate", type=float, required=True)
ap.add_argument("--seconds", type=float, default=3)
ap.add_argument("--size", type=int, default=1024)
a = ap.parse_args()

r, w = os.pipe()
if os.fork() == 0:
    os.close(w)
    while os.read(r, 1 << 20):
        pass
    os._exit(0)
os.close(r)
head = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"'
pad = a.size - len(head) - len('"}}\n') - 8
sent = 0
start = time.perf_counter()
deadline = start + a.seconds
batch = 64
while True:
    now = time.perf_counter()
    if now >= deadline:
        break
    if a.rate > 0:
        due = int((now - start) * a.rate)
        if sent >= due:
            time.sleep(min(0.001, (sent - due + 1) / a.rate))
            continue
        n = min(batch, due - sent)
    else:
        n = batch
    for _ in range(n):
        os.write(w, f'{head}{sent:08d}{"x" * pad}"}}}}\n'.encode())
        sent += 1
elapsed = time.perf_counter() - start
os.close(w)
os.wait()
print(json.dumps({"messages": sent, "seconds": elapsed, "msgs_per_s": sent / elapsed, "bytes": sent * a.size}))
