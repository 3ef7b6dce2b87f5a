"""A realistic mix of MCP stdio traffic between two processes over pipes, for
measuring capture size: tool calls with prose arguments, tool results made of
real text (Python standard library sources and their docstrings), an
occasional base64 image (incompressible), a tools/list with JSON schemas,
progress and logging notifications. Deterministic (seeded). Prints the JSON
bytes sent each way.

usage: realistic.py [--messages N] [--seed S]
"""
import argparse, base64, glob, json, os, random, sysconfig, uuid

ap = argparse.ArgumentParser()
ap.add_argument("--messages", type=int, default=4000, help="round trips")
ap.add_argument("--seed", type=int, default=7)
a = ap.parse_args()
rng = random.Random(a.seed)

stdlib = sysconfig.get_paths()["stdlib"]
sources = sorted(glob.glob(os.path.join(stdlib, "*.py")))
texts = []
for path in sources[:200]:
    try:
        texts.append(open(path, encoding="utf-8").read())
    except (OSError, UnicodeDecodeError):
        pass
words = " ".join(texts[:20]).split()

def excerpt(lo, hi):
    t = rng.choice(texts)
    n = rng.randint(lo, hi)
    start = rng.randint(0, max(0, len(t) - n))
    return t[start:start + n]

TOOLS = {"tools": [{"name": f"tool_{i}", "description": excerpt(80, 300), "inputSchema": {
    "type": "object", "properties": {f"arg_{j}": {"type": rng.choice(["string", "integer", "boolean"]),
                                                  "description": excerpt(20, 80)} for j in range(rng.randint(1, 5))},
    "required": [f"arg_0"]}} for i in range(40)]}

def request(i):
    if i == 0:
        return {"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": {}}
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": f"tool_{rng.randrange(40)}", "arguments": {"query": " ".join(rng.choices(words, k=rng.randint(3, 30))),
                                                          "limit": rng.randint(1, 100)},
        "_meta": {"progressToken": str(uuid.UUID(int=rng.getrandbits(128)))}}}

def replies(req):
    if req["method"] == "tools/list":
        return [{"jsonrpc": "2.0", "id": req["id"], "result": TOOLS}]
    out = []
    token = req["params"]["_meta"]["progressToken"]
    for step in range(rng.randint(0, 3)):
        out.append({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": step + 1, "total": 3}})
    if rng.random() < 0.2:
        out.append({"jsonrpc": "2.0", "method": "notifications/message",
                    "params": {"level": "info", "logger": "server", "data": excerpt(40, 200)}})
    content = [{"type": "text", "text": excerpt(200, 12000)}]
    if rng.random() < 0.05:
        content.append({"type": "image", "mimeType": "image/png",
                        "data": base64.b64encode(rng.randbytes(rng.randint(2000, 40000))).decode()})
    out.append({"jsonrpc": "2.0", "id": req["id"], "result": {"content": content, "isError": rng.random() < 0.03}})
    return out

c2s_r, c2s_w = os.pipe()
s2c_r, s2c_w = os.pipe()
if os.fork() == 0:
    os.close(c2s_w); os.close(s2c_r)
    buf, sent = b"", 0
    while True:
        chunk = os.read(c2s_r, 1 << 16)
        if not chunk:
            os._exit(0)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            for msg in replies(json.loads(line)):
                data = (json.dumps(msg) + "\n").encode()
                os.write(s2c_w, data)
os.close(c2s_r); os.close(s2c_w)
buf, up, down = b"", 0, 0
for i in range(a.messages):
    data = (json.dumps(request(i)) + "\n").encode()
    up += len(data) - 1
    os.write(c2s_w, data)
    while True:
        while b"\n" not in buf:
            buf += os.read(s2c_r, 1 << 16)
        line, buf = buf.split(b"\n", 1)
        down += len(line)
        if b'"id"' in line[:40] or b'"result"' in line:
            msg = json.loads(line)
            if msg.get("id") == i:
                break
os.close(c2s_w)
os.wait()
print(json.dumps({"round_trips": a.messages, "json_bytes_client_to_server": up, "json_bytes_server_to_client": down}))
