"""A fixture for asyncio test tiers: a test fails if it leaves a task pending.

Conftests of those tiers import it (``from tests.asyncio_leaks import no_leaked_tasks``), which
makes it autouse there; the Qt tier has its own twin for the qasync loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)  # one turn, so tasks that are finishing can finish
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.wait(leaked)
        pytest.fail(f"the test left tasks pending: {leaked}", pytrace=False)
