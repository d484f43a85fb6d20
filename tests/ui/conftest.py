"""UI tests: pytest-qt on the offscreen platform, one qasync loop adopting the Qt application.

Tests are ordinary synchronous pytest-qt tests; ``qtbot.waitUntil`` and ``waitSignal`` run both
Qt and asyncio. A test fails if it leaves an asyncio task pending (and, by the suite's
configuration, on any Qt warning).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def qloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    # One loop for the whole run: switching qasync loops between modules left Qt timers of
    # the closed loop behind, which crashed the next module. The asyncio tiers, which need the
    # running-loop slot to themselves, are ordered before this one (tests/conftest.py).
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.events._set_running_loop(None)
    # An adopted loop is only left through app.exit(), which would end the Qt application:
    # mark it stopped by hand so that it can be closed.
    loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def no_leaked_tasks(qloop: asyncio.AbstractEventLoop, qtbot: QtBot) -> Iterator[None]:
    yield
    pending = [task for task in asyncio.all_tasks(qloop) if not task.done()]
    if pending:
        for task in pending:
            task.cancel()
        qtbot.waitUntil(lambda: all(task.done() for task in pending))
        pytest.fail(f"the test left tasks pending: {pending}", pytrace=False)
