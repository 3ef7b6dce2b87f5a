"""200 000 small non-JSON writes (77-byte log lines) into a pipe that a child drains."""
import os

r, w = os.pipe()
if os.fork() == 0:
    os.close(w)
    while os.read(r, 65536):
        pass
    os._exit(0)
os.close(r)
line = (b"2026-11-24 12:00:00 INFO worker: processed item, nothing to see here .....\n")[:77]
for _ in range(200_000):
    os.write(w, line)
os.close(w)
os.wait()
