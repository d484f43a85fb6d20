"""Reads its input, complains on standard error, and exits with status 3."""

import sys

sys.stdin.read()
for number in range(1, 9):
    print(f"loading layer {number}", file=sys.stderr)
print("error: the model file is damaged", file=sys.stderr)
sys.exit(3)
