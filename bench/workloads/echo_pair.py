"""An MCP-shaped JSON-RPC echo pair over stdio pipes: a client sends
tools/call requests, a server answers each; prints messages per second.

usage: echo_pair.py [--messages N] [--text-bytes N]
"""
import argparse, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--messages", type=int, default=20000, help="round trips")
ap.add_argument("--text-bytes", type=int, default=100)
a = ap.parse_args()

c2s_r, c2s_w = os.pipe()
s2c_r, s2c_w = os.pipe()
if os.fork() == 0:
    os.close(c2s_w); os.close(s2c_r)
    buf = b""
    while True:
        chunk = os.read(c2s_r, 65536)
        if not chunk:
            os._exit(0)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        out = []
        for line in lines:
            req = json.loads(line)
            out.append(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {
                "content": [{"type": "text", "text": req["params"]["arguments"]["text"]}]}}))
        os.write(s2c_w, ("\n".join(out) + "\n").encode())

os.close(c2s_r); os.close(s2c_w)
text = "x" * a.text_bytes
buf = b""
start = time.perf_counter()
for i in range(a.messages):
    os.write(c2s_w, (json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": text}}}) + "\n").encode())
    while b"\n" not in buf:
        buf += os.read(s2c_r, 65536)
    line, buf = buf.split(b"\n", 1)
elapsed = time.perf_counter() - start
os.close(c2s_w)
os.wait()
print(json.dumps({"messages": 2 * a.messages, "seconds": elapsed, "msgs_per_s": 2 * a.messages / elapsed}))
