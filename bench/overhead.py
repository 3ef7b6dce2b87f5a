#!/usr/bin/env python3
"""Recording overhead and capacity of `mcpspy record`, measured side by side.

Every figure is a ratio of runs taken in alternation (plain, recording,
recording, plain, ...) in one invocation, so that a machine whose speed drifts
still gives a fair comparison. Needs root (the recorder loads BPF).

usage: sudo bench/overhead.py [--bin target/release/mcpspy] [--pairs 7]
                              [--rungs tp-btf,raw-tp,tracepoint] [--only NAME,...]
Prints a Markdown report on stdout.
"""
import argparse, atexit, json, os, platform, signal, sqlite3, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
WL = os.path.join(HERE, "workloads")
PY = sys.executable

UNRELATED = {
    "dd bs=128 x500k through a pipe": ["sh", "-c", "dd if=/dev/zero bs=128 count=500000 status=none | dd of=/dev/null bs=128 status=none"],
    "dd bs=4k x200k through a pipe": ["sh", "-c", "dd if=/dev/zero bs=4k count=200000 status=none | dd of=/dev/null bs=4k status=none"],
    "python: 200k non-JSON 77 B writes": [PY, os.path.join(WL, "small_writes.py")],
    "python: 100k open, read to end, close": [PY, os.path.join(WL, "open_close.py")],
}

UNRELATED_TCP = {
    "TCP loopback, 200k sends of 128 B": [PY, os.path.join(WL, "tcp_stream.py"), "--size", "128", "--count", "200000"],
    "TCP loopback, 100k sends of 4 KiB": [PY, os.path.join(WL, "tcp_stream.py"), "--size", "4096", "--count", "100000"],
}


def run_timed(cmd):
    """Runs cmd; returns (wall s, cpu s of it and its children, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"workload failed: {cmd}")
    # wait4 counts the child and the descendants it reaped (the dd pair under sh).
    return wall, ru.ru_utime + ru.ru_stime, out


class Recorder:
    def __init__(self, binary, rung, path, extra=()):
        self.path = path
        args = [binary, "record", "--force", "-o", path] + (["--attach", rung] if rung else []) + list(extra)
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        for line in self.p.stderr:
            self.log.append(line.rstrip())
            if "recording to" in line:
                return
        sys.exit(f"recorder did not start: {self.log}")

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        rest = self.p.stderr.read()
        self.log += rest.splitlines()
        _, status, ru = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        if self.p.returncode != 0:
            sys.exit(f"recorder failed: {self.log}")
        # The recorder's own CPU (drain, compression, SQLite), from start to stop.
        self.cpu = ru.ru_utime + ru.ru_stime
        return self.log


# --pid of an idle process (a sleep that makes no system call): every call is
# filtered out at the top of the program, which shows what the hook alone
# costs. (A pid that does not exist is refused by the recorder.)
NO_PROCESS = []

# --follow of the same idle process: every call pays the lookup in the
# followed map, and every fork and exit on the host the tree's upkeep.
FOLLOW_IDLE = []


def start_idle():
    """The idle process the two lists above name; the caller kills it, and
    so does the exit of a run that stops early."""
    idle = subprocess.Popen(["sleep", "100000"])
    atexit.register(idle.kill)
    NO_PROCESS.extend(["--pid", str(idle.pid)])
    FOLLOW_IDLE.extend(["--follow", str(idle.pid)])
    return idle


def measure(cmd, binary, rung, pairs, metric, extra=()):
    """Alternates plain and recorded runs; returns per-pair ratios and medians."""
    plain, recorded, recorder_cpu = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(pairs):
            order = ("plain", "rec") if i % 2 == 0 else ("rec", "plain")
            for kind in order:
                if kind == "plain":
                    plain.append(run_timed(cmd))
                else:
                    rec = Recorder(binary, rung, os.path.join(d, "c.db"), extra)
                    recorded.append(run_timed(cmd))
                    rec.stop()
                    recorder_cpu.append(rec.cpu)
    m = metric(plain, recorded)
    m["recorder_cpu"] = statistics.median(recorder_cpu)
    return m


def time_metric(plain, recorded):
    wall = [r[0] / p[0] for p, r in zip(plain, recorded)]
    cpu = [r[1] / p[1] for p, r in zip(plain, recorded)]
    return {
        "plain_wall": statistics.median(p[0] for p in plain),
        "rec_wall": statistics.median(r[0] for r in recorded),
        "wall_ratio": statistics.median(wall),
        "cpu_ratio": statistics.median(cpu),
        "wall_ratio_range": (min(wall), max(wall)),
    }


def rate_metric(plain, recorded):
    rate = lambda run: json.loads(run[2])["msgs_per_s"]
    ratios = [rate(p) / rate(r) for p, r in zip(plain, recorded)]
    return {
        "plain_rate": statistics.median(rate(p) for p in plain),
        "rec_rate": statistics.median(rate(r) for r in recorded),
        "wall_ratio": statistics.median(ratios),
        "wall_ratio_range": (min(ratios), max(ratios)),
    }


def capture_facts(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    lost = db.execute("SELECT COALESCE(SUM(ring_full + read_failed + map_full + truncated + user_lost), 0) FROM drops").fetchone()[0]
    events, payload = db.execute("SELECT COALESCE(SUM(events), 0), COALESCE(SUM(bytes), 0) FROM streams").fetchone()
    db.close()
    return lost, events, payload, os.path.getsize(path)


def loadable_rungs(binary, wanted):
    ok = []
    with tempfile.TemporaryDirectory() as d:
        for rung in wanted:
            r = subprocess.run([binary, "record", "--force", "--duration", "200ms", "--attach", rung, "-o", os.path.join(d, "x.db")],
                               capture_output=True, text=True)
            if r.returncode == 0:
                ok.append(rung)
            else:
                print(f"<!-- rung {rung} does not load: {r.stderr.strip().splitlines()[-1]} -->")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "mcpspy"))
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--rungs", default="tp-btf,raw-tp,tracepoint")
    ap.add_argument("--only", default="unrelated,echo,rate,tcp,http,size", help="which sections")
    ap.add_argument("--keep-capture", help="with the size section: keep its capture here")
    a = ap.parse_args()
    only = set(a.only.split(","))
    binary = os.path.abspath(a.bin)
    rungs = loadable_rungs(binary, a.rungs.split(","))
    print(f"Machine: {platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs; "
          f"{a.pairs} alternating pairs per figure; medians, ratio = recording / not recording.\n")

    idle = start_idle()
    for section, title, workloads in [
        ("unrelated", "Unrelated pipe I/O (nothing is captured; the in-kernel filter rejects it)", UNRELATED),
        ("tcp", "Unrelated TCP traffic on loopback (nothing is captured)", UNRELATED_TCP),
    ]:
        if section not in only:
            continue
        print(f"### {title}\n")
        print("| workload | rung | plain wall s | recording wall s | wall ratio (min-max) | CPU ratio |")
        print("|---|---|---|---|---|---|")
        for name, cmd in workloads.items():
            for rung in rungs:
                for label, extra in [(rung, ()), (f"{rung}, hook only (--pid of an idle process)", NO_PROCESS),
                                     (f"{rung}, --follow of an idle process", FOLLOW_IDLE)]:
                    m = measure(cmd, binary, rung, a.pairs, time_metric, extra)
                    lo, hi = m["wall_ratio_range"]
                    print(f"| {name} | {label} | {m['plain_wall']:.3f} | {m['rec_wall']:.3f} | "
                          f"{m['wall_ratio']:.2f}x ({lo:.2f}-{hi:.2f}) | {m['cpu_ratio']:.2f}x |", flush=True)
        print()

    def rate_rows(first, cases):
        """Prints one row per (label, cmd, rung, extra) of a messages/s workload."""
        print(f"| {first} | plain msgs/s | recording msgs/s | slowdown (min-max) | recorder CPU s per run |")
        print("|---|---|---|---|---|")
        for label, cmd, rung, extra in cases:
            m = measure(cmd, binary, rung, a.pairs, rate_metric, extra)
            lo, hi = m["wall_ratio_range"]
            print(f"| {label} | {m['plain_rate']:.0f} | {m['rec_rate']:.0f} | {m['wall_ratio']:.3f}x ({lo:.3f}-{hi:.3f}) | "
                  f"{m['recorder_cpu']:.2f} |", flush=True)
        print()

    if "http" in only:
        print("### MCP over HTTP/1.1 keep-alive, Node client and server (and Bun's), and over HTTP/2 between Go's client and server (every message captured at both ends)\n")
        with tempfile.TemporaryDirectory() as d:
            key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
            http = ["node", os.path.join(WL, "http_echo.mjs"), "--messages", "5000"]
            https = http + ["--tls", key, cert]
            # Go's own TLS and HTTP/2 (issue 15), built non-PIE with symbols as `go build` does.
            go = os.path.join(d, "go_echo")
            subprocess.run(["go", "build", "-o", go, os.path.join(WL, "go_echo.go")], check=True,
                           env=dict(os.environ, GOCACHE=os.path.join(d, "gocache"), GO111MODULE="off"))
            # Bun's own BoringSSL (issue 16), located by the scan: bun is on the
            # recorder's PATH, so it is probed from the start.
            apps = os.path.join(os.path.dirname(HERE), "tests", "peers", "tls-apps", "node_modules", ".bin")
            os.environ["PATH"] = apps + os.pathsep + os.environ["PATH"]
            bun_https = [os.path.join(apps, "bun")] + https[1:]
            rate_rows("transport", [
                ("http", http, None, ()),
                ("http, hook only (--pid of an idle process)", http, None, NO_PROCESS),
                ("https (TLS plaintext via uprobes)", https, None, ()),
                ("https, hooks only (--pid of an idle process; uprobes still trap)", https, None, NO_PROCESS),
                ("https, --no-tls (syscalls only; nothing captured)", https, None, ["--no-tls"]),
                ("https, Go client and server over HTTP/2 (crypto/tls uprobes)", [go, "-messages", "50000", "-start-delay", "1s"], None, ()),
                ("https, Go, --no-tls (syscalls only; nothing captured)", [go, "-messages", "50000", "-start-delay", "1s"], None, ["--no-tls"]),
                ("https, Bun client and server (BoringSSL located by the scan)", bun_https, None, ()),
                ("https, Bun, --no-tls (syscalls only; nothing captured)", bun_https, None, ["--no-tls"]),
            ])

    if "echo" in only:
        print("### MCP stdio echo pair (every message captured at both ends)\n")
        cmd = [PY, os.path.join(WL, "echo_pair.py"), "--messages", "20000"]
        rate_rows("rung", [case for rung in rungs for case in [
            (rung, cmd, rung, ()),
            (f"{rung}, hook only (--pid of an idle process)", cmd, rung, NO_PROCESS),
        ]])

    if "rate" in only:
        print("### Sustained 1 KiB messages through a pipe, default rung and ring\n")
        print("| offered msgs/s | achieved msgs/s | records lost | records stored | file bytes per captured JSON byte |")
        print("|---|---|---|---|---|")
        best = 0
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "rate.db")
            for rate in [25000, 50000, 100000, 150000, 200000, 0]:
                rec = Recorder(binary, None, path)
                _, _, out = run_timed([PY, os.path.join(WL, "rate.py"), "--rate", str(rate), "--seconds", "4"])
                rec.stop()
                got = json.loads(out)
                lost, events, payload, size = capture_facts(path)
                print(f"| {'unpaced' if rate == 0 else rate} | {got['msgs_per_s']:.0f} | {lost} | {events} | {size / max(payload, 1):.4f} |", flush=True)
                if lost == 0:
                    best = max(best, got["msgs_per_s"])
        print(f"\nHighest rate with 0 records lost: {best:.0f} msgs/s (each message is stored twice: writer and reader side).\n")

    if "size" in only:
        print("### Capture size of realistic MCP traffic (bench/workloads/realistic.py, 4000 round trips)\n")
        with tempfile.TemporaryDirectory() as d:
            path = a.keep_capture or os.path.join(d, "size.db")
            rec = Recorder(binary, None, path)
            _, _, out = run_timed([PY, os.path.join(WL, "realistic.py"), "--messages", "4000"])
            rec.stop()
            got = json.loads(out)
            unique = got["json_bytes_client_to_server"] + got["json_bytes_server_to_client"]
            lost, events, payload, size = capture_facts(path)
            print("| JSON bytes sent (each message once) | bytes captured (writer and reader copies) | records | records lost | file bytes | file bytes per captured byte | file bytes per JSON byte sent |")
            print("|---|---|---|---|---|---|---|")
            print(f"| {unique} | {payload} | {events} | {lost} | {size} | {size / max(payload, 1):.4f} | {size / max(unique, 1):.4f} |\n")

    idle.kill()
    idle.wait()


if __name__ == "__main__":
    main()
