"""Unrelated TCP traffic on loopback: a sender pushes --count blocks of --size
bytes (not HTTP, not JSON) to a receiver; prints nothing."""
import argparse, os, socket

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--count", type=int, default=200000)
a = ap.parse_args()

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
if os.fork() == 0:
    conn, _ = srv.accept()
    while conn.recv(1 << 16):
        pass
    os._exit(0)
c = socket.create_connection(("127.0.0.1", port))
block = bytes(range(256)) * (a.size // 256) + bytes(a.size % 256)
for _ in range(a.count):
    c.sendall(block)
c.close()
os.wait()
