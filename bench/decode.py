#!/usr/bin/env python3
"""Decoding figures (issue 3), measured with public tools: hyperfine and GNU time.

Makes synthetic captures of 1 KiB messages (bench/synth.rs: tool
calls and their results with ~9% non-ASCII text, one exchange in a hundred a
resources/read, every message recorded at the writer and at the reader), then
measures, each command pinned to one core (taskset -c 1):

  throughput   mcpspy export of 200k messages to JSONL (stdout to /dev/null)
  query        mcpspy query --method on 1M messages: the first run builds the
               index (timed once, cold), later runs read it; --no-index decodes
               the whole capture, measured in the same hyperfine run
  memory       peak RSS (/usr/bin/time -v) of exporting a capture of ~1 GiB
  size         the capture file's size against the JSONL export's

The index goes to a cache folder inside --dir, never to ~/.cache.
Prints a Markdown section on stdout; progress goes to stderr.

usage: bench/decode.py [--dir DIR] [--runs N] [--large-messages N] [--skip-large]
Setup: scripts/bench-setup.sh (hyperfine, GNU time).
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mcpspy")
CORE = "1"


def log(*a):
    print("decode-bench:", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def generate(path, messages):
    """bench/synth.rs writes the capture (once; reused after)."""
    if os.path.exists(path):
        return
    log(f"writing {path} ({messages} messages)")
    run(["cargo", "bench", "-q", "--bench", "synth", "--", path + ".part", str(messages)],
        cwd=ROOT, stdout=subprocess.DEVNULL)
    os.rename(path + ".part", path)


def hyperfine(commands, runs, env, warmup=1, empty=()):
    """Median, min, max and mean CPU time (user + system) of each command,
    run side by side. The commands in `empty` select nothing, so they exit
    1 (mcpspy's "nothing matched"); any other exit fails the benchmark."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["hyperfine", "-N", "-i", "--style", "none", "--warmup", str(warmup),
               "--runs", str(runs), "--export-json", out.name] + commands
        run(cmd, env=env, stdout=subprocess.DEVNULL)
        results = json.load(open(out.name))["results"]
    for c, r in zip(commands, results):
        want = 1 if c in empty else 0
        if any(code != want for code in r["exit_codes"]):
            raise SystemExit(f"{c}: exit codes {r['exit_codes']}, expected {want}")
    return [(r["median"], r["min"], r["max"], r["user"] + r["system"]) for r in results]


def gnu_time(cmd, env, stdout=subprocess.DEVNULL):
    """(wall seconds, peak RSS bytes) from /usr/bin/time -v."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, stdout=stdout,
                       stderr=subprocess.PIPE, text=True, check=True)
    rss = wall = None
    for line in p.stderr.splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size (kbytes):"):
            rss = int(line.split(":")[-1]) * 1024
        if line.startswith("Elapsed (wall clock) time"):
            parts = line.rsplit(" ", 1)[-1].split(":")
            wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(parts)))
    return wall, rss


def pinned(*args):
    return ["taskset", "-c", CORE, BIN] + list(args)


def machine():
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, {mem / 2**30:.0f} GiB RAM, Linux {platform.release()}, "
            f"{rustc}, mcpspy {commit}")


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench-decode"),
                    help="where the captures (reused between runs) and the index go")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--large-messages", type=int, default=7_300_000,
                    help="messages of the memory capture (7.3M make a file of ~1 GiB)")
    ap.add_argument("--skip-large", action="store_true", help="no memory figure")
    a = ap.parse_args()
    for tool in ("hyperfine", "taskset", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"decode-bench: {tool} is missing: run scripts/bench-setup.sh")
    os.makedirs(a.dir, exist_ok=True)
    load_start = f"{os.getloadavg()[0]:.2f}"
    log("cargo build --release")
    run(["cargo", "build", "-q", "--release"], cwd=ROOT)
    cache = os.path.join(a.dir, "cache")
    env = dict(os.environ, XDG_CACHE_HOME=cache, NO_COLOR="1")

    small = os.path.join(a.dir, "1kib-200k.db")
    query_db = os.path.join(a.dir, "1kib-1m.db")
    large = os.path.join(a.dir, f"1kib-{a.large_messages}.db")
    generate(small, 200_000)
    generate(query_db, 1_000_000)
    if not a.skip_large:
        generate(large, a.large_messages)

    # Throughput: replay → JSONL on one core.
    log("throughput")
    (t_export, t_min, t_max, cpu_export), = hyperfine([" ".join(pinned("export", small))], a.runs, env)
    jsonl = os.path.join(a.dir, "1kib-200k.jsonl")
    with open(jsonl, "wb") as out:
        run(pinned("export", small), env=env, stdout=out)
    export_bytes = os.path.getsize(jsonl)
    with open(jsonl, "rb") as f:
        data = f.read()
    non_ascii = sum(1 for b in data if b >= 0x80) / len(data)
    os.remove(jsonl)
    capture_bytes = os.path.getsize(small)

    # Query: the index built once (cold), then read; and decoding without it.
    log("query: building the index")
    shutil.rmtree(cache, ignore_errors=True)
    build_wall, build_rss = gnu_time(pinned("query", query_db, "--method", "resources/read"), env)
    index_bytes = sum(os.path.getsize(os.path.join(d, f))
                      for d, _, fs in os.walk(cache) for f in fs)
    log("query: timing")
    queries = [
        ("--method resources/read", "1% of the messages selected"),
        ("--method tools/call", "99% selected"),
        ("--summary", "tables of all of them"),
        ("--errors --method tools/call", "two passes, no errors: none selected"),
    ]
    cmds = []
    for q, _ in queries:
        cmds.append(" ".join(pinned("query", query_db, *q.split())))
        cmds.append(" ".join(pinned("query", query_db, *q.split(), "--no-index")))
    empty = [c for c in cmds if "--errors" in c]
    timed = hyperfine(cmds, max(3, a.runs // 2), env, empty=empty)
    lines = {}
    for q, _ in queries:
        p = subprocess.run(pinned("query", query_db, *q.split()), env=env, capture_output=True)
        lines[q] = p.stdout.count(b"\n")

    # Memory: exporting a ~1 GiB capture.
    if not a.skip_large:
        log("memory: exporting the large capture")
        large_wall, large_rss = gnu_time(pinned("export", large), env)
        large_bytes = os.path.getsize(large)

    print("## Decoding (issue 3)\n")
    print(f"Machine: {machine()}. Every command pinned to one core (`taskset -c {CORE}`); "
          f"medians of hyperfine runs (min–max in brackets), and the mean CPU time (user + "
          f"system) of those runs, which other load on the machine inflates less. Load "
          f"average at the start and end: {load_start} / {os.getloadavg()[0]:.2f}.\n")
    print("Command: `bench/decode.py` (setup: `scripts/bench-setup.sh`). Captures: "
          "`bench/synth.rs` (1 KiB JSON-RPC lines, tools/call with 1% "
          "resources/read, each message seen at writer and reader).\n")
    print("| figure | target | measured | |")
    print("|---|---|---|---|")
    rate = 200_000 / t_export
    print(f"| decode throughput, `export` → JSONL, one core, 200k messages of 1 KiB "
          f"({non_ascii:.1%} non-ASCII bytes) | ≥ 200 000 msgs/s | {rate:,.0f} msgs/s "
          f"({t_export:.3f} s [{t_min:.3f}–{t_max:.3f}]; CPU {cpu_export:.3f} s: "
          f"{200_000 / cpu_export:,.0f} msgs per CPU second) | {'met' if rate >= 200_000 else 'missed'} |")
    for i, (q, share) in enumerate(queries):
        (t, lo, hi, cpu), (t_no, lo_no, hi_no, _) = timed[2 * i], timed[2 * i + 1]
        met = "met" if t <= 1.0 else "missed"
        target = "≤ 1 s" if q.startswith("--method") else "—"
        print(f"| `query {q}`, 1M messages ({share}; {lines[q]:,} lines out), from the index | "
              f"{target} | {t:.3f} s [{lo:.3f}–{hi:.3f}], CPU {cpu:.3f} s; without index {t_no:.3f} s "
              f"[{lo_no:.3f}–{hi_no:.3f}], {t_no / t:.1f}× slower | "
              f"{met if target != '—' else ''} |")
    print(f"| first `query` of the 1M capture: decodes it and builds the index | — | "
          f"{build_wall:.2f} s once, peak RSS {mib(build_rss)}; index {mib(index_bytes)} "
          f"(capture {mib(os.path.getsize(query_db))}) | |")
    if not a.skip_large:
        print(f"| peak RSS, `export` of a {mib(large_bytes)} capture ({a.large_messages:,} messages) "
              f"| ≤ 200 MiB | {mib(large_rss)} ({large_wall:.0f} s) | "
              f"{'met' if large_rss <= 200 * 2**20 else 'missed'} |")
    ratio = capture_bytes / export_bytes
    print(f"| capture size / JSONL export size, 200k messages | ≤ 0.25 | {ratio:.3f} "
          f"({mib(capture_bytes)} / {mib(export_bytes)}) | {'met' if ratio <= 0.25 else 'missed'} |")


if __name__ == "__main__":
    main()
