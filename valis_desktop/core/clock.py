"""Time for the engine: the real monotonic clock, a manual one for tests, and deadlines on both.

Breakers and timeouts read time only through a ``Clock`` so that tests can move time forward
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the event loop once ``delay`` seconds have passed."""


class MonotonicClock:
    """The real clock. Its timers run on the event loop, whose clock must be monotonic."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to; timers fire when ``advance`` passes them."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer()
        heapq.heappush(self._timers, (self._now + delay, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward and run the timers that are due, in order."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer, callback = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                callback()
        self._now = target


class Deadlines:
    """Creates deadlines on a clock; deadlines due in the same ``resolution`` slot share one
    timer, so arming and cancelling a deadline costs a set operation, not a timer."""

    def __init__(self, clock: Clock, resolution: float = 0.25) -> None:
        self.clock = clock
        self.resolution = resolution
        self._slots: dict[float, set[Deadline]] = {}

    def deadline(self, delay: float) -> Deadline:
        """A timeout scope that expires ``delay`` seconds from now (up to ``resolution`` late)."""
        return Deadline(self, delay)

    def _add(self, deadline: Deadline) -> None:
        slot = math.ceil(deadline._when / self.resolution) * self.resolution
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            self.clock.call_later(slot - self.clock.now(), partial(self._fire, slot))
        members.add(deadline)
        deadline._slot = slot

    def _remove(self, deadline: Deadline) -> None:
        members = self._slots.get(deadline._slot)
        if members is not None:
            members.discard(deadline)

    def _fire(self, slot: float) -> None:
        now = self.clock.now()
        for deadline in self._slots.pop(slot, ()):
            if deadline._when > now:
                self._add(deadline)  # extended since it was filed
            else:
                deadline._expire()


class Deadline:
    """``with deadline:`` raises ``TimeoutError`` if the block outlives its deadline.

    Like ``asyncio.timeout``, but on any ``Clock``; moving the deadline later (``extend``, on
    every chunk of a stream) costs a float assignment: the deadline is re-filed lazily when its
    slot's timer fires.
    """

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_slot", "_task", "_when")

    def __init__(self, deadlines: Deadlines, delay: float) -> None:
        self._deadlines = deadlines
        self._when = deadlines.clock.now() + delay
        self._slot = 0.0
        self._expired = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def extend(self, delay: float) -> None:
        """Move the deadline to ``delay`` seconds from now."""
        deadlines = self._deadlines
        self._when = deadlines.clock.now() + delay
        if self._task is not None and self._when + deadlines.resolution <= self._slot:
            deadlines._remove(self)  # much earlier than filed: the one case re-filed at once
            deadlines._add(self)

    def expired(self) -> bool:
        return self._expired

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines._add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deadlines._remove(self)
        assert self._task is not None
        # Only a cancellation that we caused becomes a TimeoutError (as in asyncio.timeout).
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._expired = True
        assert self._task is not None
        self._task.cancel()
