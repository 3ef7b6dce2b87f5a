#!/usr/bin/env python3
"""Export figures of issue 12, measured with public tools: hyperfine and GNU time.

On the decode benchmark's capture of 1M messages of 1 KiB (bench/synth.rs, made
by bench/decode.py's generator):

  throughput  export --format parquet, otlp-json and otlp (OTLP/HTTP to a local
              receiver that answers without decoding) against export --format
              jsonl, side by side in one hyperfine run, output to /dev/null:
              once with every export pinned to one core (taskset -c 1; the
              receiver on core 0), the CPU each costs; once free to use both
              cores (Parquet encodes and compresses on a second thread), the
              throughput a user sees
  size        the Parquet and OTLP/JSON files against the JSONL file
  memory      peak RSS (/usr/bin/time -v) of the Parquet and OTLP/JSON exports of a
              capture of ~1 GiB, beside the JSONL export's

Prints a Markdown section on stdout; progress goes to stderr.

usage: bench/exports.py [--dir DIR] [--runs N] [--large-messages N] [--skip-large]
Setup: scripts/setup.sh (the receiver's Python) and scripts/bench-setup.sh.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode  # noqa: E402  (the capture generator, machine facts and GNU time)

FORMATS = ["jsonl", "parquet", "otlp-json", "otlp"]


def start_receiver(out_dir):
    """tests/peers/otlp_collector.py serve --discard on core 0; (process, URL)."""
    python = os.path.join(decode.ROOT, ".venv", "bin", "python3")
    script = os.path.join(decode.ROOT, "tests", "peers", "otlp_collector.py")
    p = subprocess.Popen(["taskset", "-c", "0", python, script, "serve", "--discard",
                          "--out", os.path.join(out_dir, "unused.jsonl")],
                         stdout=subprocess.PIPE, text=True)
    port = p.stdout.readline().split()[1]
    return p, f"http://127.0.0.1:{port}"


def args_for(fmt, capture, endpoint, out="/dev/null"):
    if fmt == "otlp":
        return ["export", capture, "--format", "otlp", "--endpoint", endpoint]
    return ["export", capture, "--format", fmt, "-o", out, "--force"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(decode.ROOT, "target", "bench-decode"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--large-messages", type=int, default=7_300_000)
    ap.add_argument("--skip-large", action="store_true")
    a = ap.parse_args()
    for tool in ("hyperfine", "taskset", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"exports-bench: {tool} is missing: run scripts/bench-setup.sh")
    os.makedirs(a.dir, exist_ok=True)
    load_start = f"{os.getloadavg()[0]:.2f}"
    decode.log("cargo build --release")
    decode.run(["cargo", "build", "-q", "--release"], cwd=decode.ROOT)
    capture = os.path.join(a.dir, "1kib-1m.db")
    large = os.path.join(a.dir, f"1kib-{a.large_messages}.db")
    decode.generate(capture, 1_000_000)
    if not a.skip_large:
        decode.generate(large, a.large_messages)
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(a.dir, "cache"), NO_COLOR="1")

    with tempfile.TemporaryDirectory() as tmp:
        receiver, endpoint = start_receiver(tmp)
        try:
            decode.log("throughput")
            cmds = [" ".join(decode.pinned(*args_for(f, capture, endpoint))) for f in FORMATS]
            timed = decode.hyperfine(cmds, a.runs, env)
            free = [" ".join([decode.BIN] + args_for(f, capture, endpoint)) for f in FORMATS]
            timed_free = decode.hyperfine(free, a.runs, env)
        finally:
            receiver.kill()
            receiver.wait()
        decode.log("sizes")
        sizes = {}
        for f in FORMATS[:3]:
            out = os.path.join(tmp, f"out.{f}")
            decode.run(decode.pinned(*args_for(f, capture, endpoint, out)), env=env)
            sizes[f] = os.path.getsize(out)
            os.remove(out)
    if not a.skip_large:
        decode.log("memory")
        rss = {f: decode.gnu_time(decode.pinned(*args_for(f, large, None)), env)
               for f in FORMATS[:3]}

    print("## OpenTelemetry and Parquet (issue 12)\n")
    print(f"Machine: {decode.machine()}. Load average at the start and end: {load_start} / "
          f"{os.getloadavg()[0]:.2f}. Command: `bench/exports.py --runs {a.runs}` (setup: "
          f"`scripts/setup.sh`, `scripts/bench-setup.sh`). First every export pinned to one core "
          f"(`taskset -c {decode.CORE}`), then free to use both, all four in one hyperfine run "
          f"each, output to /dev/null; "
          f"`otlp` posts to a local receiver on core 0 that answers without decoding "
          f"(`tests/peers/otlp_collector.py serve --discard`). Capture: bench/synth.rs, "
          f"1,000,000 messages of 1 KiB ({decode.mib(os.path.getsize(capture))}), 500,000 "
          f"tools/call round trips with both ends captured: 1,000,000 spans.\n")
    for title, rows in (("one core", timed), ("both cores", timed_free)):
        print(f"| export of 1M messages, {title} | target | median [min–max] | CPU (user + system) | vs jsonl (wall) | vs jsonl (CPU) | |")
        print("|---|---|---|---|---|---|---|")
        base, base_cpu = rows[0][0], rows[0][3]
        for f, (t, lo, hi, cpu) in zip(FORMATS, rows):
            target = "—" if f == "jsonl" else "≤ 1.2×"
            verdict = "" if f == "jsonl" else ("met" if t / base <= 1.2 else "**missed**")
            print(f"| `--format {f}` | {target} | {t:.2f} s [{lo:.2f}–{hi:.2f}] | {cpu:.2f} s | "
                  f"{t / base:.2f}× | {cpu / base_cpu:.2f}× | {verdict} |")
        print()
    print("| file of the 1M capture | size | vs JSONL |")
    print("|---|---|---|")
    for f in FORMATS[:3]:
        print(f"| `--format {f}` | {decode.mib(sizes[f])} | {sizes[f] / sizes['jsonl']:.3f} |")
    if not a.skip_large:
        print()
        print(f"| peak RSS, export of {decode.mib(os.path.getsize(large))} "
              f"({a.large_messages:,} messages) | RSS | wall |")
        print("|---|---|---|")
        for f in FORMATS[:3]:
            wall, peak = rss[f]
            print(f"| `--format {f}` | {decode.mib(peak)} | {wall:.0f} s |")


if __name__ == "__main__":
    main()
