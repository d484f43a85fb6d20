"""Writes its pid (and, with --child, a child's pid) to the file named by VALIS_TEST_PIDS,
optionally prints a first word, then waits forever: a model that hangs.

    hang.py [--child] [--partial]
"""

import os
import signal
import subprocess
import sys

pids = [os.getpid()]
if "--child" in sys.argv:
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    pids.append(child.pid)
with open(os.environ["VALIS_TEST_PIDS"], "a") as record:
    record.write("".join(f"{pid}\n" for pid in pids))
if "--partial" in sys.argv:
    sys.stdout.write("Thinking")
    sys.stdout.flush()
signal.pause()
