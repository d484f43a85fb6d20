"""The installed command starts: the window comes up on the offscreen platform and shuts down
cleanly, and the terminal chat answers on the built-in chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's data, settings and logs go to a fresh folder, not the user's."""
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    return tmp_path


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


def test_the_window_keeps_its_conversations(private_home: Path) -> None:
    assert run("--exit-when-shown").returncode == 0
    database = private_home / "xdg_data_home" / "valis-desktop" / "conversations.sqlite3"
    assert database.exists()
    again = run("--exit-when-shown")
    assert again.returncode == 0, again.stderr
