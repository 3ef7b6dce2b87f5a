#!/usr/bin/env python3
"""What the seal costs while recording, side by side with a build that has
none: the sustained pipe workload of 1 KiB messages (bench/workloads/rate.py,
unpaced) is recorded in alternation by the unsealed build (the commit before
the seal), by this build (sealed as it writes), and by this build with
--sign. Each run gives the rate the workload achieved, the records lost, and
the recorder's own CPU time per message stored. Needs root.

usage: sudo bench/seal.py --base /path/to/unsealed/mcpspy [--bin target/release/mcpspy]
                          [--pairs 7] [--seconds 4]
Prints a Markdown report on stdout.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import PY, WL, Recorder, capture_facts, run_timed  # noqa: E402


def one(binary, extra, seconds, d):
    path = os.path.join(d, "c.db")
    rec = Recorder(binary, None, path, extra)
    _, _, out = run_timed([PY, os.path.join(WL, "rate.py"), "--rate", "0", "--seconds", str(seconds)])
    rec.stop()
    lost, events, _, size = capture_facts(path)
    got = json.loads(out)
    return {"rate": got["msgs_per_s"], "lost": lost, "events": events, "cpu_us": rec.cpu / max(events, 1) * 1e6, "size": size}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="a build of the commit before the seal")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "mcpspy"))
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "bench.key")
        subprocess.run([a.bin, "keygen", "-o", key], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        builds = {
            "unsealed (base)": (a.base, []),
            "sealed": (a.bin, []),
            "sealed and signed": (a.bin, ["--sign", key]),
        }
        runs = {name: [] for name in builds}
        names = list(builds)
        for i in range(a.pairs):
            # Rotate the order so that drift in the machine's speed spreads evenly.
            for name in names[i % 3:] + names[:i % 3]:
                binary, extra = builds[name]
                runs[name].append(one(binary, extra, a.seconds, d))
    base = runs["unsealed (base)"]
    print(f"{a.pairs} rounds of {a.seconds:g} s each, the three recorders in rotation.\n")
    print("| recorder | msgs/s achieved (median) | records lost (max) | recorder CPU µs per record (median) | CPU vs unsealed (median of per-round ratios) | rate vs unsealed |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        cpu_ratio = statistics.median(r["cpu_us"] / b["cpu_us"] for r, b in zip(rs, base))
        rate_ratio = statistics.median(r["rate"] / b["rate"] for r, b in zip(rs, base))
        print(f"| {name} | {statistics.median(r['rate'] for r in rs):.0f} | {max(r['lost'] for r in rs)} "
              f"| {statistics.median(r['cpu_us'] for r in rs):.3f} | {cpu_ratio:.3f} | {rate_ratio:.3f} |")


if __name__ == "__main__":
    main()
