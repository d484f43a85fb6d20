"""Writes 256 KiB of answer before it reads its (large) input, then says how much it read."""

import sys

sys.stdout.write("a" * 262_144)
sys.stdout.flush()
print(f" read {len(sys.stdin.buffer.read())} bytes")
