#!/usr/bin/env python3
"""Unrelated file I/O that ends streams: 100k times, open a small file, read
it to its end (a read that returns 0) and close it. What the close(2)
tracepoint and the end-of-file check cost a process that is not MCP."""
import os
import tempfile

with tempfile.NamedTemporaryFile() as f:
    f.write(b"x" * 100)
    f.flush()
    for _ in range(100_000):
        fd = os.open(f.name, os.O_RDONLY)
        while os.read(fd, 4096):
            pass
        os.close(fd)
