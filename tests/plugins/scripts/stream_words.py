"""Answers word by word, flushing each word, with a pause between words: a slow model."""

import sys
import time

conversation = sys.stdin.read()
last = conversation.rstrip("\n").rsplit("\n\n", 1)[-1]
for word in f"You said: {last.removeprefix('User: ')}".split():
    sys.stdout.write(word + " ")
    sys.stdout.flush()
    time.sleep(0.02)
