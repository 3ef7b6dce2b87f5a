#!/usr/bin/env python3
"""Time spent inside mcpspy's kernel programs, per run, from the kernel's own
BPF statistics (kernel.bpf_stats_enabled and bpftool). Says how much of a
recording's overhead is the program and how much the hook that runs it.

Each workload is run under a recorder twice: capturing, and with --pid of no
process (the program returns after its first checks). The statistics add two
clock reads to every run, so compare the rows rather than reading one alone.
Needs root and bpftool (scripts/bench-setup.sh).

usage: sudo bench/program_cost.py [--bin target/release/mcpspy] [--attach tp-btf]
Prints a Markdown table on stdout.
"""
import argparse, json, os, subprocess, tempfile

from overhead import NO_PROCESS, PY, UNRELATED, WL, Recorder, start_idle

STATS = "/proc/sys/kernel/bpf_stats_enabled"

WORKLOADS = {
    "dd bs=128 x500k through a pipe (nothing captured)": UNRELATED["dd bs=128 x500k through a pipe"],
    "MCP stdio echo pair, 20k round trips (all captured)": [PY, os.path.join(WL, "echo_pair.py"), "--messages", "20000"],
}


def set_stats(value):
    with open(STATS, "w") as f:
        f.write(value)


def program_totals():
    """(run_time_ns, run_cnt) of each loaded mcpspy program, by name."""
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, check=True).stdout)
    return {p["name"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in progs if p.get("name", "").startswith("mcpspy")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "mcpspy"))
    ap.add_argument("--attach", default="tp-btf")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    with open(STATS) as f:
        was = f.read().strip()
    print(f"Rung {a.attach}; the sys_exit program runs on every system call that ends on the host.\n")
    print("| workload | recorder | program | runs | ns per run |")
    print("|---|---|---|---|---|")
    idle = start_idle()
    try:
        set_stats("1")
        with tempfile.TemporaryDirectory() as d:
            for name, cmd in WORKLOADS.items():
                for mode, extra in [("capturing", ()), ("--pid of an idle process", NO_PROCESS)]:
                    rec = Recorder(binary, a.attach, os.path.join(d, "c.db"), extra)
                    before = program_totals()
                    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
                    after = program_totals()
                    rec.stop()
                    for prog, (ns, cnt) in sorted(after.items()):
                        runs = cnt - before.get(prog, (0, 0))[1]
                        if "exit" in prog and runs:
                            spent = ns - before.get(prog, (0, 0))[0]
                            print(f"| {name} | {mode} | {prog} | {runs} | {spent / runs:.0f} |", flush=True)
    finally:
        set_stats(was)
        idle.kill()
        idle.wait()


if __name__ == "__main__":
    main()
