"""Two processes write JSON-RPC lines into one pipe, in small pieces and in
turns, so that the reader receives their lines interleaved; a third reads
the pipe. Ground truth for the interleaving tests.

usage: two_writers.py OUTDIR COMM [--chunk N] [--lines N] [--whole N]

Each writer writes --lines lines, each in --chunk-byte write(2) calls; the
writers take turns chunk by chunk (a token passed over two more pipes), so
every line the reader reads holds pieces of both. After them, writer A
writes --whole more lines, each in one call, alone. OUTDIR gets
writer-<pid>.bin (what each wrote) and reader.bin (what the reader read);
the last line printed is "reader PID writer PID PID".
"""
import argparse, ctypes, json, os

ap = argparse.ArgumentParser()
ap.add_argument("outdir")
ap.add_argument("comm")
ap.add_argument("--chunk", type=int, default=16)
ap.add_argument("--lines", type=int, default=3)
ap.add_argument("--whole", type=int, default=1)
a = ap.parse_args()

ctypes.CDLL(None).prctl(15, a.comm.encode(), 0, 0, 0)  # PR_SET_NAME


def line(who, i):
    msg = {"jsonrpc": "2.0", "id": f"{who}-{i}", "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": f"{who} line {i}"}}}
    return (json.dumps(msg) + "\n").encode()


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


data_r, data_w = os.pipe()
# Token pipes: A's turn, B's turn (one byte each; not JSON, never a stream).
turn = [os.pipe(), os.pipe()]


def writer(me):
    who = "ab"[me]
    mine, theirs = turn[me][0], turn[1 - me][1]
    pieces = []
    for i in range(a.lines):
        text = line(who, i)
        pieces += [text[j:j + a.chunk] for j in range(0, len(text), a.chunk)]
    wrote = bytearray()
    for piece in pieces:
        os.read(mine, 1)  # the token; end of file once the other is done
        write_all(data_w, piece)
        wrote += piece
        os.write(theirs, b".")
    # Done: the other writer's reads of the token now end at once; take its
    # tokens until it is done too.
    os.close(theirs)
    while os.read(mine, 1):
        pass
    if me == 0:
        for i in range(a.whole):
            text = line(who, a.lines + i)
            write_all(data_w, text)
            wrote += text
    with open(os.path.join(a.outdir, f"writer-{os.getpid()}.bin"), "wb") as f:
        f.write(wrote)
    os._exit(0)


pids = []
for me in (0, 1):
    pid = os.fork()
    if pid == 0:
        os.close(data_r)
        for t in turn[1 - me][0], turn[me][1]:
            os.close(t)
        writer(me)
    pids.append(pid)
os.close(data_w)
os.write(turn[0][1], b".")  # A goes first
for r, w in turn:
    os.close(r)
    os.close(w)
got = bytearray()
while True:
    chunk = os.read(data_r, 65536)
    if not chunk:
        break
    got += chunk
for pid in pids:
    os.waitpid(pid, 0)
with open(os.path.join(a.outdir, "reader.bin"), "wb") as f:
    f.write(got)
print(f"reader {os.getpid()} writer {pids[0]} {pids[1]}")
