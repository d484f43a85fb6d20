"""Deadlines on the manual and the real clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from valis_desktop.core.clock import Deadline, Deadlines, ManualClock, MonotonicClock, Timer


async def sleep_forever_under(deadline: Deadline, started: asyncio.Event) -> None:
    with deadline:
        started.set()
        await asyncio.Event().wait()


async def test_deadline_raises_timeout_when_the_clock_passes_it(clock: ManualClock) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(sleep_forever_under(Deadlines(clock).deadline(10.0), started))
    await started.wait()
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await task


async def test_extend_moves_the_deadline_later_and_earlier(clock: ManualClock) -> None:
    started = asyncio.Event()
    deadline = Deadlines(clock).deadline(10.0)
    task = asyncio.create_task(sleep_forever_under(deadline, started))
    await started.wait()
    clock.advance(8.0)
    deadline.extend(10.0)  # now due at 18
    clock.advance(9.0)
    await asyncio.sleep(0)
    assert not task.done() and not deadline.expired()
    deadline.extend(1.0)  # earlier than the armed timer: due at 18
    clock.advance(1.0)
    with pytest.raises(TimeoutError):
        await task
    assert deadline.expired()


async def test_an_outside_cancellation_stays_a_cancellation(clock: ManualClock) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(sleep_forever_under(Deadlines(clock).deadline(10.0), started))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadline_on_the_real_clock() -> None:
    started = asyncio.Event()
    with pytest.raises(TimeoutError):
        await sleep_forever_under(Deadlines(MonotonicClock(), 0.01).deadline(0.001), started)


async def test_deadlines_due_together_share_one_timer(clock: ManualClock) -> None:
    armed: list[float] = []

    class CountingClock(ManualClock):
        def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
            armed.append(delay)
            return super().call_later(delay, callback)

    counting = CountingClock()
    deadlines = Deadlines(counting, resolution=0.25)
    started = [asyncio.Event() for _ in range(50)]
    tasks = [
        asyncio.create_task(sleep_forever_under(deadlines.deadline(10.0 + (i + 1) / 1000), event))
        for i, event in enumerate(started)
    ]
    for event in started:
        await event.wait()
    assert len(armed) == 1
    counting.advance(10.25)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
