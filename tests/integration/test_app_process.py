"""The installed command starts: the window comes up on the offscreen platform and shuts down
cleanly, and the terminal chat answers on the built-in chain."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "VALIS_SAFE_MODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "valis_desktop", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_window_opens_and_closes_cleanly() -> None:
    done = run("--exit-when-shown")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("shown at=")
    assert "Traceback" not in done.stderr
    assert "Warning" not in done.stderr and "QObject" not in done.stderr


@pytest.mark.parametrize("how", ["stdin", "argument"])
def test_the_terminal_chat_answers(how: str) -> None:
    if how == "stdin":
        done = run("chat", "--chain", "fallback", stdin="hello there\n")
    else:
        done = run("chat", "--chain", "fallback", "-m", "hello there")
    assert done.returncode == 0, done.stderr
    assert "not a language model" in done.stdout
    assert "[answered · by fallback" in done.stderr
