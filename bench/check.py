#!/usr/bin/env python3
"""`mcpspy check` against `mcpspy export` (issue 11), measured with hyperfine.

On the decode benchmark's capture of 1M messages of 1 KiB (bench/synth.rs, made
by bench/decode.py's generator), each command pinned to one core (taskset -c 1),
side by side in one hyperfine run, output to /dev/null:

  export --format jsonl      the baseline
  check                      every rule
  check --skip-rule secret   without the secret rules (redact's rule set), to
                             show what they cost

Prints a Markdown section on stdout; progress goes to stderr.

usage: bench/check.py [--dir DIR] [--runs N]
Setup: scripts/bench-setup.sh (hyperfine).
"""
import argparse, os, shutil, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode  # noqa: E402  (the capture generator, machine facts, hyperfine)

COMMANDS = [
    ("export --format jsonl", ["export", "{c}", "-o", "/dev/null", "--force"]),
    ("check", ["check", "{c}", "-o", "/dev/null", "--force", "--fail-on", "never"]),
    ("check --skip-rule secret", ["check", "{c}", "-o", "/dev/null", "--force", "--fail-on", "never",
                                  "--skip-rule", "secret"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(decode.ROOT, "target", "bench-decode"))
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    for tool in ("hyperfine", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"check-bench: {tool} is missing: run scripts/bench-setup.sh")
    os.makedirs(a.dir, exist_ok=True)
    load_start = f"{os.getloadavg()[0]:.2f}"
    decode.log("cargo build --release")
    decode.run(["cargo", "build", "-q", "--release"], cwd=decode.ROOT)
    capture = os.path.join(a.dir, "1kib-1m.db")
    decode.generate(capture, 1_000_000)
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(a.dir, "cache"), NO_COLOR="1")
    decode.log("throughput")
    cmds = [" ".join(decode.pinned(*[x.format(c=capture) for x in args])) for _, args in COMMANDS]
    timed = decode.hyperfine(cmds, a.runs, env)

    print("## check (issue 11)\n")
    print(f"Machine: {decode.machine()}. Load average at the start and end: {load_start} / "
          f"{os.getloadavg()[0]:.2f}. Command: `bench/check.py --runs {a.runs}` (setup: "
          f"`scripts/bench-setup.sh`). Each command pinned to one core (`taskset -c {decode.CORE}`), "
          f"all in one hyperfine run, output to /dev/null. Capture: bench/synth.rs, 1,000,000 "
          f"messages of 1 KiB ({decode.mib(os.path.getsize(capture))}).\n")
    print("| on 1M messages | target | median [min–max] | CPU (user + system) | vs export (wall) | vs export (CPU) | |")
    print("|---|---|---|---|---|---|---|")
    base, base_cpu = timed[0][0], timed[0][3]
    for i, ((name, _), (t, lo, hi, cpu)) in enumerate(zip(COMMANDS, timed)):
        target = "—" if i != 1 else "≤ 1.5×"
        verdict = "" if i != 1 else ("met" if t / base <= 1.5 else "**missed**")
        print(f"| `{name}` | {target} | {t:.2f} s [{lo:.2f}–{hi:.2f}] | {cpu:.2f} s | "
              f"{t / base:.2f}× | {cpu / base_cpu:.2f}× | {verdict} |")


if __name__ == "__main__":
    main()
