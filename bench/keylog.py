#!/usr/bin/env python3
"""Decryption throughput (issue 16): TLS opened with a key log, against the
plain decode of the same messages.

Deno's fetch client (tests/peers/fetch_client.mjs, REPEAT=N echo calls, one
keep-alive connection) talks to the Python SDK's Streamable HTTP server twice:
over http:// and over https:// (HTTP/1.1 both: the server has no HTTP/2).
Each run is recorded by `mcpspy record -- deno ...` (the https one with
--keylog, so the capture holds Deno's ciphertext and its key log). Both
captures must export the same messages (kinds and sizes, as multisets);
then hyperfine times `mcpspy export` of each, side by side, pinned to one
core (taskset -c 1). The ratio is TLS over plain.

Prints a Markdown section on stdout; progress goes to stderr. Root, BPF,
scripts/setup.sh and scripts/bench-setup.sh (hyperfine).

usage: bench/keylog.py [--calls N] [--runs N] [--dir DIR]
"""
import argparse, json, os, platform, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mcpspy")
PEERS = os.path.join(ROOT, "tests", "peers")
DENO = os.path.join(PEERS, "tls-apps", "node_modules", "@deno", "linux-x64-glibc", "deno")
PY = os.path.join(ROOT, ".venv", "bin", "python3")


def log(*a):
    print("keylog-bench:", *a, file=sys.stderr, flush=True)


def server(d, name, tls):
    info = os.path.join(d, name + ".info.json")
    cmd = [PY, os.path.join(PEERS, "py_server.py"), "--transport", "http", "--json-response",
           "--info", info]
    if tls:
        cmd += ["--certfile", os.path.join(d, "pki", "cert.pem"),
                "--keyfile", os.path.join(d, "pki", "key.pem")]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            return p, json.load(open(info))["url"]
        except (OSError, ValueError):
            time.sleep(0.1)
    raise SystemExit(f"{name}: the server never listened")


def record(d, name, url, calls, keylog=None):
    cap = os.path.join(d, name + ".db")
    cmd = [BIN, "record", "--force", "-o", cap]
    if keylog:
        cmd += ["--keylog", keylog]
    cmd += ["--", DENO, "run", "--allow-net", "--allow-env", "--allow-read",
            os.path.join(PEERS, "fetch_client.mjs"), url, "0"]
    env = dict(os.environ, REPEAT=str(calls), DENO_CERT=os.path.join(d, "pki", "ca.pem"),
               DENO_DIR=os.path.join(d, "deno"))
    log(f"recording {name}: {calls} calls")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return cap


def messages(cap):
    out = subprocess.run([BIN, "export", cap], check=True, capture_output=True).stdout
    seen = []
    for line in out.splitlines():
        v = json.loads(line)
        seen.append((v["type"], v["size_bytes"], bool(v["tcp_transport"]["tls"])))
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="mcpspy-keylog-")
    os.makedirs(d, exist_ok=True)
    subprocess.run([os.path.join(PEERS, "make_pki.sh"), os.path.join(d, "pki")], check=True,
                   stdout=subprocess.DEVNULL)
    plain_srv, plain_url = server(d, "plain", False)
    tls_srv, tls_url = server(d, "tls", True)
    try:
        plain = record(d, "plain", plain_url, a.calls)
        keys = os.path.join(d, "keys.log")
        if os.path.exists(keys):
            os.remove(keys)
        tls = record(d, "tls", tls_url, a.calls, keylog=keys)
    finally:
        for p in (plain_srv, tls_srv):
            p.send_signal(signal.SIGTERM)
            p.wait()
    got_plain, got_tls = messages(plain), messages(tls)
    if sorted((k, n) for k, n, _ in got_plain) != sorted((k, n) for k, n, _ in got_tls):
        raise SystemExit("the two captures do not export the same messages")
    if not all(t for _, _, t in got_tls) or any(t for _, _, t in got_plain):
        raise SystemExit("the https capture is not all TLS, or the http one not all plain")
    n = len(got_tls)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmds = [f"taskset -c 1 {BIN} export {c}" for c in (plain, tls)]
        subprocess.run(["hyperfine", "-N", "--style", "none", "--warmup", "1", "--runs",
                        str(a.runs), "--export-json", out.name] + cmds, check=True,
                       stdout=subprocess.DEVNULL)
        res = json.load(open(out.name))["results"]
    size = {c: os.path.getsize(c) for c in (plain, tls)}
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"### Decryption throughput (`bench/keylog.py --calls {a.calls} --runs {a.runs}`, "
          f"at {commit})\n")
    print(f"{n} messages ({a.calls} echo calls, their answers, and the session's start), Deno's "
          f"fetch to the Python SDK's server over one HTTP/1.1 keep-alive connection, "
          f"recorded at Deno's end only (the ciphertext does not compress: the files differ "
          f"in size). `mcpspy export`, {a.runs} runs, pinned to one core; "
          f"machine: {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}.\n")
    print("| capture | file | wall median [min-max] | CPU | messages/s |")
    print("|---|---|---|---|---|")
    for name, c, r in (("http:// (plain)", plain, res[0]), ("https:// + key log", tls, res[1])):
        print(f"| {name} | {size[c] / 1024:.0f} KiB | {r['median']:.3f} s "
              f"[{r['min']:.3f}-{r['max']:.3f}] | {r['user'] + r['system']:.3f} s | "
              f"{n / r['median']:,.0f} |")
    print(f"\nTLS over plain: **{res[1]['median'] / res[0]['median']:.2f}x** by wall time, "
          f"{(res[1]['user'] + res[1]['system']) / (res[0]['user'] + res[0]['system']):.2f}x "
          f"by CPU.")
    if not a.dir:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
