"""The example plugin's own test suite passes, run the way its author runs it: pytest in the
plugin's folder, with the plugin's pytest configuration (pyproject.toml there) and the fixtures
Valis Desktop ships. (tests/core/test_pytest_plugin.py covers pytest-asyncio's strict mode.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "plugins" / "valis-echo-template"


@pytest.mark.slow
def test_the_echo_templates_own_tests_pass() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:pytest-qt"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^=+ \d+ passed in ", done.stdout, flags=re.M), done.stdout
    assert "tests/test_echo.py" in done.stdout
