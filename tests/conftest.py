"""Shared by every tier: a test fails on an unexpected log record of WARNING or above."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
