"""Time for the engine: the real monotonic clock, and a manual one for tests and tools.

Breakers and timeouts read time only through a ``Clock`` so that tests can move time forward
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from types import TracebackType
from typing import Protocol


class Deadline(Protocol):
    """An ``async with`` block that raises ``TimeoutError`` when its deadline passes."""

    async def __aenter__(self) -> Deadline: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def reschedule(self, delay: float) -> None:
        """Move the deadline to ``delay`` seconds from now."""

    def expired(self) -> bool: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""

    def deadline(self, delay: float) -> Deadline:
        """A timeout scope that expires ``delay`` seconds from now."""


class _LoopDeadline:
    """``asyncio.timeout`` on the running loop's clock."""

    __slots__ = ("_delay", "_timeout")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._timeout: asyncio.Timeout | None = None

    async def __aenter__(self) -> _LoopDeadline:
        self._timeout = asyncio.timeout(self._delay)
        await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._timeout is not None
        await self._timeout.__aexit__(exc_type, exc, tb)

    def reschedule(self, delay: float) -> None:
        assert self._timeout is not None
        self._timeout.reschedule(asyncio.get_running_loop().time() + delay)

    def expired(self) -> bool:
        return self._timeout is not None and self._timeout.expired()


class MonotonicClock:
    """The real clock: the event loop's monotonic time."""

    def now(self) -> float:
        return time.monotonic()

    def deadline(self, delay: float) -> Deadline:
        return _LoopDeadline(delay)


class _ManualDeadline:
    """A stdlib ``asyncio.Timeout`` that fires when a ``ManualClock`` passes its deadline."""

    __slots__ = ("_clock", "_generation", "_timeout", "_when")

    def __init__(self, clock: ManualClock, delay: float) -> None:
        self._clock = clock
        self._when = clock.now() + delay
        self._timeout: asyncio.Timeout | None = None
        self._generation = 0

    async def __aenter__(self) -> _ManualDeadline:
        self._timeout = asyncio.timeout(None)
        await self._timeout.__aenter__()
        self._clock._schedule(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._timeout is not None
        self._generation = -1  # disarm: the clock drops it lazily
        await self._timeout.__aexit__(exc_type, exc, tb)

    def reschedule(self, delay: float) -> None:
        self._when = self._clock.now() + delay
        self._generation += 1
        self._clock._schedule(self)

    def expired(self) -> bool:
        return self._timeout is not None and self._timeout.expired()

    def _fire(self, generation: int) -> None:
        if generation == self._generation and self._timeout is not None:
            self._timeout.reschedule(asyncio.get_running_loop().time())


class ManualClock:
    """A clock that moves only when told to; deadlines fire when ``advance`` passes them."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, int, _ManualDeadline]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def deadline(self, delay: float) -> Deadline:
        return _ManualDeadline(self, delay)

    def advance(self, seconds: float) -> None:
        """Move time forward; expired deadlines raise in their tasks at the loop's next turn."""
        self._now += seconds
        while self._heap and self._heap[0][0] <= self._now:
            _, _, generation, deadline = heapq.heappop(self._heap)
            deadline._fire(generation)

    def _schedule(self, deadline: _ManualDeadline) -> None:
        entry = (deadline._when, next(self._order), deadline._generation, deadline)
        heapq.heappush(self._heap, entry)
