"""Shared by every tier: a test fails on an unexpected log record of WARNING or above, and no
test reads or writes the real home's llm configuration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Qt tier last: its qasync loop stays the running loop until the session ends."""
    items.sort(key=lambda item: "tests/ui/" in item.nodeid)


@pytest.fixture(autouse=True)
def fail_on_log_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Tests that expect a warning assert on ``caplog.records`` and then ``caplog.clear()``."""
    yield
    unexpected = [
        record
        for when in ("setup", "call")
        for record in caplog.get_records(when)
        if record.levelno >= logging.WARNING
    ]
    if unexpected:
        lines = "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in unexpected)
        pytest.fail(f"unexpected log records:\n{lines}", pytrace=False)


@pytest.fixture(autouse=True)
def llm_user_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The llm library (loaded by the ``llm`` plugin with every installed plugin) keeps keys,
    aliases and logs in its user directory: a temporary one, here and in child processes."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm-home"))
