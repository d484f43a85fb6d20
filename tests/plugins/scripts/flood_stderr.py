"""Writes 512 KiB to standard error before answering: more than any pipe holds."""

import sys

sys.stdin.read()
sys.stderr.write("x" * 524_288)
sys.stderr.flush()
print("done")
