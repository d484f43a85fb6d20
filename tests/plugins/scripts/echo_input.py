"""Answers with exactly what it read on its standard input."""

import sys

sys.stdout.buffer.write(sys.stdin.buffer.read())
