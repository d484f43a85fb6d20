"""A resizable, first-come-first-served counting semaphore that knows how many slots are used."""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """Like ``asyncio.Semaphore``, but the limit can change while in use, ``in_use`` and
    ``peak`` are exact, and a released slot goes straight to the longest waiter (no barging)."""

    __slots__ = ("_waiters", "in_use", "limit", "peak")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a limit must be at least 1")
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def try_acquire(self) -> bool:
        """Take a free slot if there is one and nobody is waiting for it."""
        if self.in_use < self.limit and not self._waiters:
            self._take()
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._hand_over()

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a limit must be at least 1")
        self.limit = limit
        self._hand_over()

    def _take(self) -> None:
        self.in_use += 1
        if self.in_use > self.peak:
            self.peak = self.in_use

    def _hand_over(self) -> None:
        while self._waiters and self.in_use < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)
