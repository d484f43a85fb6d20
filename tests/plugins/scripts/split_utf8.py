"""Writes text whose multi-byte characters are split across separate writes."""

import sys

sys.stdin.read()
data = "Grüße, 世界! 🙂".encode()
for index in range(len(data)):
    sys.stdout.buffer.write(data[index : index + 1])
    sys.stdout.buffer.flush()
