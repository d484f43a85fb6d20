"""Integration tests. A test fails if it leaves a task pending or a thread of the local provider
running; ``local_provider`` is the real embedded model, loaded once per module."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from valis_local import LocalProvider

from tests.asyncio_leaks import no_leaked_tasks  # noqa: F401 - autouse here

LOCAL_THREAD_PREFIX = "valis-local"


def local_threads() -> list[threading.Thread]:
    """The local provider's worker threads that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith(LOCAL_THREAD_PREFIX)]


@pytest.fixture
def live_local_threads() -> Callable[[], list[threading.Thread]]:
    return local_threads


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    if threads := local_threads():
        pytest.fail(f"the test left threads running: {threads}", pytrace=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_provider() -> AsyncIterator[LocalProvider]:
    """The bundled SmolLM2 model, loaded once per module (about half a second)."""
    provider = LocalProvider()
    await provider.load()
    yield provider
    await provider.aclose()
