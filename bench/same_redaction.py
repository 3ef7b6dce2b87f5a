#!/usr/bin/env python3
"""Two builds of mcpspy redact the same captures with one key file: are the
children the same? Compares, for each capture and each set of options, what
a writer makes of the records (blocks, block index, streams table, the
seal's block digests, process rows, meta but the capture's id and seal, the
derivation but its time), what `redact` printed, and its `--dry-run` report.

usage: bench/same_redaction.py OLD_MCPSPY NEW_MCPSPY CAPTURE...
Prints a line per pair; exits 1 if any differs.
"""
import hashlib, json, os, sqlite3, subprocess, sys, tempfile

OPTIONS = [[], ["--keep-non-mcp"], ["--rules", "RULES"], ["--rules", "RULES", "--keep-non-mcp"]]
# A rule that matches common words: many replacements in any capture.
RULES = """version = 1

[[rule]]
name = "broad-words"
kind = "value"
pattern = '(?:tools|text|name|mcp|content|json|Host|localhost|python|node)'
examples = [ { text = 'a tools b', secret = "tools" } ]
keep = ["nothing here"]
"""


def tables(path):
    c = sqlite3.connect(path)
    h = hashlib.sha256()
    for sql in [
        "SELECT block_id, first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data FROM blocks ORDER BY first_seq",
        "SELECT * FROM block_streams ORDER BY block_id, stream_id",
        "SELECT * FROM streams ORDER BY stream_id",
        "SELECT block_id, digest FROM seal_blocks ORDER BY block_id",
        "SELECT * FROM processes ORDER BY pid",
        "SELECT * FROM meta WHERE key NOT IN ('capture_id', 'derivation') ORDER BY key",
    ]:
        for row in c.execute(sql):
            h.update(repr(row).encode())
    steps = json.loads(c.execute("SELECT value FROM meta WHERE key = 'derivation'").fetchone()[0])
    for step in steps:
        step.pop("at", None)
    h.update(json.dumps(steps, sort_keys=True).encode())
    return h.hexdigest()


def redact(binary, capture, options, out, key):
    args = [binary, "redact", capture, "-o", out, "--force", "--key-file", key] + options
    p = subprocess.run(args, capture_output=True, text=True)
    said = " ".join(w for w in p.stderr.split() if not w.endswith("s") or not w[:-1].replace(".", "").isdigit())
    dry = subprocess.run([binary, "redact", capture, "--dry-run"] + options, capture_output=True, text=True)
    return p.returncode, said, dry.stdout, tables(out) if p.returncode == 0 else None


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    old, new, captures = sys.argv[1], sys.argv[2], sys.argv[3:]
    differ = 0
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "k.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        rules = os.path.join(d, "broad.toml")
        with open(rules, "w") as f:
            f.write(RULES)
        for capture in captures:
            for options in OPTIONS:
                options = [rules if o == "RULES" else o for o in options]
                a = redact(old, capture, options, os.path.join(d, "a.db"), key)
                b = redact(new, capture, options, os.path.join(d, "b.db"), key)
                same = a == b
                differ += not same
                shown = " ".join("broad.toml" if o == rules else o for o in options)
                print(f"{'same' if same else 'DIFFERENT'}\t{os.path.basename(capture)}\t{shown}")
    print(f"{differ} of {len(captures) * len(OPTIONS)} pairs differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
