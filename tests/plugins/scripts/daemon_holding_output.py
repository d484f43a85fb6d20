"""Starts a daemon (a session of its own, outside the command's process group) that keeps the
command's output open, records the daemon's pid in VALIS_TEST_PIDS, answers and exits."""

import os
import subprocess
import sys

daemon = subprocess.Popen(
    [sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True
)
with open(os.environ["VALIS_TEST_PIDS"], "a") as record:
    record.write(f"{daemon.pid}\n")
print("hi")
