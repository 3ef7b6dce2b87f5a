#!/usr/bin/env python3
"""Figures of the audit commands (issues 9 and 10), on one capture of about
1 GiB (bench/synth.rs, 7.3M messages of 1 KiB, sealed as it is written),
each command pinned to one core (taskset -c 1), side by side in one
hyperfine run per comparison:

  verify   mcpspy verify against sha256sum of the same file (target: 1.5x);
           verify --deep beside export (JSONL to /dev/null)
  redact   mcpspy redact against export of the same file (target: 1.5x), and
           its peak RSS (/usr/bin/time -v; target: 200 MiB)

Prints a Markdown section on stdout; progress goes to stderr.

usage: bench/audit.py [--capture FILE] [--runs N]
Setup: scripts/bench-setup.sh (hyperfine, GNU time).
"""
import argparse, os, platform, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode import BIN, CORE, generate, gnu_time, hyperfine, log  # noqa: E402


def fmt(r):
    med, lo, hi, cpu = r
    return f"{med:.2f} s [{lo:.2f}–{hi:.2f}], CPU {cpu:.2f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", default=os.path.join(tempfile.gettempdir(), "mcpspy-bench-1g.db"))
    ap.add_argument("--messages", type=int, default=7_300_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    generate(a.capture, a.messages)
    size = os.path.getsize(a.capture)
    env = dict(os.environ)
    pin = ["taskset", "-c", CORE]
    with tempfile.TemporaryDirectory() as d:
        env["XDG_CACHE_HOME"] = d
        out = os.path.join(d, "redacted.db")
        log("verify against sha256sum")
        sha, ver = hyperfine(
            [" ".join(pin + ["sha256sum", a.capture]), " ".join(pin + [BIN, "verify", a.capture])],
            a.runs, env)
        log("verify --deep beside export")
        deep, exp = hyperfine(
            [" ".join(pin + [BIN, "verify", "--deep", a.capture]),
             " ".join(pin + [BIN, "export", a.capture])],
            a.runs, env)
        log("redact beside export")
        red, exp2 = hyperfine(
            [" ".join(pin + [BIN, "redact", a.capture, "-o", out, "--force"]),
             " ".join(pin + [BIN, "export", a.capture])],
            a.runs, env)
        _, rss = gnu_time(pin + [BIN, "redact", a.capture, "-o", out, "--force"], env)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("## Audit: verify and redact (issues 9 and 10)\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"mcpspy {rev}. Command: `bench/audit.py --runs {a.runs}`. Capture: {size / 2**20:.1f} MiB "
          f"({a.messages:,} messages, bench/synth.rs, sealed). Every command pinned to one core; medians of "
          "hyperfine runs [min–max] and mean CPU time (user + system).\n")
    print("| figure | target | measured | |")
    print("|---|---|---|---|")
    print(f"| `verify` against `sha256sum` of the same file | ≤ 1.5× | {ver[0] / sha[0]:.2f}× "
          f"({fmt(ver)} against {fmt(sha)}) | {'met' if ver[0] / sha[0] <= 1.5 else 'missed'} |")
    print(f"| `verify --deep` beside `export` (JSONL) | reported | {deep[0] / exp[0]:.2f}× "
          f"({fmt(deep)} against {fmt(exp)}) | |")
    print(f"| `redact` against `export` | ≤ 1.5× | {red[0] / exp2[0]:.2f}× ({fmt(red)} against {fmt(exp2)}) "
          f"| {'met' if red[0] / exp2[0] <= 1.5 else 'missed'} |")
    print(f"| `redact` peak RSS | < 200 MiB | {rss / 2**20:.1f} MiB | {'met' if rss < 200 * 2**20 else 'missed'} |")


if __name__ == "__main__":
    main()
