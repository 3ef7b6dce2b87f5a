#!/usr/bin/env python3
"""The decoding figures of bench/decode.py for two builds, side by side in one run.

Runs each command with this tree's target/release/mcpspy and with a baseline binary
(built from another commit), alternating in one hyperfine run per figure, each pinned
to one core (taskset -c 1), and prints a Markdown table of both medians and their
ratio. Each build keeps its query index in a cache folder of its own, so that neither
rebuilds the other's.

  throughput  export of 200k messages to JSONL (stdout to /dev/null)
  query       query --method (1% and 99% selected), --summary, --errors, from the index
  memory      peak RSS (/usr/bin/time -v) of exporting a capture of ~1 GiB

usage: bench/compare.py --baseline BIN [--label TEXT] [--runs N] [--dir DIR] [--skip-large]
Setup: scripts/bench-setup.sh (hyperfine, GNU time). The captures are bench/decode.py's.
"""
import argparse, json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode  # noqa: E402  (the capture generator, machine facts and GNU time)

QUERIES = ["--method resources/read", "--method tools/call", "--summary",
           "--errors --method tools/call"]


def side_by_side(pairs, runs, warmup=1):
    """[(new median, base median, new CPU, base CPU)] for pairs of commands,
    all in one hyperfine run so that the two builds see the same machine."""
    flat = [c for p in pairs for c in p]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        decode.run(["hyperfine", "-N", "--style", "none", "--warmup", str(warmup),
                    "--runs", str(runs), "--export-json", out.name] + flat,
                   stdout=subprocess.DEVNULL)
        res = json.load(open(out.name))["results"]
    return [(res[2 * i]["median"], res[2 * i + 1]["median"],
             res[2 * i]["user"] + res[2 * i]["system"],
             res[2 * i + 1]["user"] + res[2 * i + 1]["system"]) for i in range(len(pairs))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="the other build's mcpspy binary")
    ap.add_argument("--label", default="baseline", help="what the baseline is (a commit)")
    ap.add_argument("--dir", default=os.path.join(decode.ROOT, "target", "bench-decode"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--large-messages", type=int, default=7_300_000)
    ap.add_argument("--skip-large", action="store_true")
    a = ap.parse_args()
    base = os.path.abspath(a.baseline)
    os.makedirs(a.dir, exist_ok=True)
    decode.run(["cargo", "build", "-q", "--release"], cwd=decode.ROOT)
    small = os.path.join(a.dir, "1kib-200k.db")
    query_db = os.path.join(a.dir, "1kib-1m.db")
    large = os.path.join(a.dir, f"1kib-{a.large_messages}.db")
    decode.generate(small, 200_000)
    decode.generate(query_db, 1_000_000)
    if not a.skip_large:
        decode.generate(large, a.large_messages)
    load_start = f"{os.getloadavg()[0]:.2f}"

    def cmd(binary, which, *args):
        cache = os.path.join(a.dir, f"cache-{which}")
        return ["taskset", "-c", decode.CORE, "env", f"XDG_CACHE_HOME={cache}", "NO_COLOR=1",
                binary] + list(args)

    def pair(*args):
        return (" ".join(cmd(decode.BIN, "new", *args)), " ".join(cmd(base, "base", *args)))

    # Each build's index, built before timing.
    for binary, which in ((decode.BIN, "new"), (base, "base")):
        decode.run(cmd(binary, which, "query", query_db, "--method", "resources/read"),
                   stdout=subprocess.DEVNULL)
    decode.log("timing")
    rows = [("export of 200k messages → JSONL", pair("export", small))]
    rows += [(f"query {q}, 1M messages, from the index", pair("query", query_db, *q.split()))
             for q in QUERIES]
    timed = side_by_side([p for _, p in rows], a.runs)
    if not a.skip_large:
        decode.log("memory")
        new_rss = decode.gnu_time(cmd(decode.BIN, "new", "export", large), os.environ)[1]
        base_rss = decode.gnu_time(cmd(base, "base", "export", large), os.environ)[1]

    print(f"Machine: {decode.machine()}; baseline: {a.label}. Load average at the start and "
          f"end: {load_start} / {os.getloadavg()[0]:.2f}. Command: `bench/compare.py --baseline "
          f"BIN --label {a.label}`, {a.runs} runs of each command, alternating.\n")
    print(f"| figure | this tree | {a.label} | ratio (wall) | ratio (CPU) |")
    print("|---|---|---|---|---|")
    for (name, _), (t, b, ct, cb) in zip(rows, timed):
        print(f"| {name} | {t:.3f} s | {b:.3f} s | {t / b:.3f} | {ct / cb:.3f} |")
    if not a.skip_large:
        print(f"| peak RSS, export of {decode.mib(os.path.getsize(large))} | "
              f"{decode.mib(new_rss)} | {decode.mib(base_rss)} | {new_rss / base_rss:.3f} | |")


if __name__ == "__main__":
    main()
