"""Reads its stdin one byte per read(2) until the end, as Python reading a
script from a pipe does, and prints its pid and how many bytes it read.

usage: byte_reader.py COMM   (COMM: the process name to take)
"""
import ctypes, os, sys

ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
n = 0
while os.read(0, 1):
    n += 1
print(f"reader {os.getpid()} {n}")
