"""Blocking work on a thread of its own, its results handed to the event loop.

The engine's calls block for seconds (loading a model, generating an answer), so they never run
on the event loop. Each piece of work gets a fresh thread that ends with the work: after a stream
is closed or a call has returned, no thread of ours is left running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Emit = Callable[[T], bool]
"""Hands one item to the event loop; returns ``False`` once the consumer wants no more."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class ThreadedStream(Generic[T], AsyncIterator[T]):
    """Runs ``work(emit)`` on a new thread and iterates, on the event loop, over what it emits.

    An exception raised by ``work`` is raised by the iteration after the items emitted before
    it. ``aclose()`` asks the work to stop (``emit`` returns ``False`` from then on) and waits
    until its thread has ended; work that checks ``emit``'s answer stops at its next item.
    """

    def __init__(self, work: Callable[[Emit[T]], None], *, name: str) -> None:
        self._work = work
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._stop = threading.Event()
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the work has not returned yet."""
        return not self._ended.done()

    def __aiter__(self) -> ThreadedStream[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # iterating again ends again
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop the work and wait for its thread to end."""
        self._stop.set()
        await asyncio.shield(self._ended)
        self._thread.join()  # it has handed over its last result: this returns at once

    # On the worker thread.

    def _emit(self, item: T) -> bool:
        if self._stop.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._work(self._emit)
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to tell
            self._loop.call_soon_threadsafe(self._end, error)

    # On the event loop.

    def _end(self, error: BaseException | None) -> None:
        self._queue.put_nowait(_End(error))
        self._ended.set_result(None)


class BackgroundCall(Generic[R]):
    """``function()`` running on a thread of its own, whose result any number of coroutines may
    await, each giving up its wait without stopping the call (on any event loop: nothing here is
    bound to one)."""

    def __init__(self, function: Callable[[], R], *, name: str) -> None:
        self._function = function
        self._future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._future.set_running_or_notify_cancel()  # a waiter's cancellation cannot cancel it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._future.done()

    async def result(self) -> R:
        try:
            return await asyncio.wrap_future(self._future)
        finally:
            if self._future.done():
                self._thread.join()  # it has set the result: this returns at once

    def _run(self) -> None:
        try:
            result = self._function()
        except BaseException as error:
            self._future.set_exception(error)
        else:
            self._future.set_result(result)


async def run_in_thread(function: Callable[[], R], *, name: str) -> R:
    """Call ``function`` on a new thread and return its result, without blocking the loop."""
    return await BackgroundCall(function, name=name).result()
