"""The provider manager: limits, cascades, breakers, timeouts, tracking."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from valis_desktop.api import (
    AuthError,
    ChatRequest,
    InvalidRequestError,
    Progress,
    RateLimitedError,
    TransientError,
    Usage,
)
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import (
    EngineEvent,
    EngineEventKind,
    ProviderManager,
)
from valis_desktop.core.request import Phase, Reply, Status
from valis_desktop.core.session import Session
from valis_desktop.testing import Script, ScriptedProvider, first_chunk

MakeManager = Callable[..., ProviderManager]

FAIL = Script(error=TransientError("HTTP 503"))


async def answer(manager: ProviderManager, chain: list[str], prompt: str = "q") -> Reply:
    session = Session(manager, chain=chain)
    reply = await session.submit(prompt)
    await session.aclose()
    return reply


async def test_fifty_sessions_respect_global_and_provider_limits(
    make_manager: MakeManager,
) -> None:
    peaks = {"global": 0}
    manager: ProviderManager

    def observe(request: ChatRequest) -> Script:
        snapshot = manager.snapshot()
        peaks["global"] = max(peaks["global"], snapshot.global_in_use)
        for status in snapshot.providers:
            assert status.in_flight <= status.limit
        return Script(chunks=("x", "y", "z"), cooperative=True)

    providers = [
        ScriptedProvider(id=name, default=observe, default_concurrency=4) for name in "abc"
    ]
    manager = make_manager(*providers, global_limit=10)
    sessions = [Session(manager, chain=[providers[i % 3].id]) for i in range(50)]
    requests = [s.submit(f"{i}") for i in range(2) for s in sessions]
    replies = await asyncio.gather(*requests)

    assert all(r.status is Status.ANSWERED for r in replies)
    assert peaks["global"] == 10
    assert [p.peak for p in providers] == [4, 4, 4]
    assert sum(len(p.calls) for p in providers) == 100
    snapshot = manager.snapshot()
    assert snapshot.global_in_use == 0 and snapshot.requests == ()


async def test_waiting_for_a_busy_provider_holds_no_global_slot(
    make_manager: MakeManager,
) -> None:
    gate = asyncio.Event()
    slow = ScriptedProvider(id="slow", default=lambda r: Script(gate=gate), default_concurrency=1)
    fast = ScriptedProvider(id="fast")
    manager = make_manager(slow, fast, global_limit=2)
    slow_sessions = [Session(manager, chain=["slow"]) for _ in range(5)]
    slow_requests = [s.submit("wait") for s in slow_sessions]
    await slow.wait_for_calls(1)

    assert (await answer(manager, ["fast"])).status is Status.ANSWERED
    gate.set()
    await asyncio.gather(*slow_requests)


async def test_three_failures_open_the_breaker_and_requests_skip_to_the_next(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(FAIL, FAIL, FAIL)
    manager = make_manager(a, b)

    for _ in range(3):
        reply = await answer(manager, ["a", "b"])
        assert reply.status is Status.ANSWERED and reply.provider_id == "b"
    assert manager.breaker("a").state is BreakerState.OPEN
    reply = await answer(manager, ["a", "b"])

    assert len(a.calls) == 3  # skipped while open
    assert reply.provider_id == "b"
    assert reply.attempts[0].outcome == "skipped"
    status = manager.snapshot().providers[0]
    assert status.failures == 3 and status.last_error == "HTTP 503"
    assert status.seconds_until_probe == pytest.approx(10.0)


async def _open(manager: ProviderManager, provider: ScriptedProvider) -> None:
    provider.push(FAIL, FAIL, FAIL)
    for _ in range(3):
        await answer(manager, [provider.id, "b"])
    assert manager.breaker(provider.id).state is BreakerState.OPEN


async def test_half_open_admits_exactly_one_probe_and_success_closes(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    manager = make_manager(a, b)
    await _open(manager, a)
    clock.advance(10.0)
    assert manager.breaker("a").state is BreakerState.HALF_OPEN

    gate = asyncio.Event()
    a.push(Script(gate=gate))
    probe_session = Session(manager, chain=["a", "b"])
    probe = probe_session.submit("probe")
    await a.wait_for_calls(4)
    others = [await answer(manager, ["a", "b"]) for _ in range(3)]
    gate.set()

    assert [r.provider_id for r in others] == ["b", "b", "b"]
    assert (await probe).provider_id == "a"
    assert len(a.calls) == 4
    assert manager.breaker("a").state is BreakerState.CLOSED
    await probe_session.aclose()


async def test_probe_failure_reopens_with_doubled_cool_down(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    manager = make_manager(a, b)
    await _open(manager, a)
    clock.advance(10.0)
    a.push(FAIL)

    assert (await answer(manager, ["a", "b"])).provider_id == "b"
    breaker = manager.breaker("a")
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_probe() == pytest.approx(20.0)
    clock.advance(19.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert (await answer(manager, ["a", "b"])).provider_id == "a"
    assert breaker.state is BreakerState.CLOSED


async def test_rate_limit_honours_retry_after(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(error=RateLimitedError("slow down", retry_after=42.0)))
    manager = make_manager(a, b)

    assert (await answer(manager, ["a", "b"])).provider_id == "b"
    assert manager.breaker("a").seconds_until_probe() == pytest.approx(42.0)
    assert (await answer(manager, ["a", "b"])).provider_id == "b"
    assert len(a.calls) == 1
    clock.advance(42.0)
    assert (await answer(manager, ["a", "b"])).provider_id == "a"


async def test_auth_failure_needs_attention_until_reset(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(error=AuthError("invalid API key")))
    manager = make_manager(a, b)

    assert (await answer(manager, ["a", "b"])).provider_id == "b"
    clock.advance(10_000.0)
    assert manager.breaker("a").state is BreakerState.NEEDS_ATTENTION
    assert (await answer(manager, ["a", "b"])).provider_id == "b"
    assert len(a.calls) == 1
    manager.reset("a")
    assert (await answer(manager, ["a", "b"])).provider_id == "a"


async def test_invalid_request_neither_trips_nor_cascades(make_manager: MakeManager) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(error=InvalidRequestError("the message is too long for this model")))
    manager = make_manager(a, b)

    reply = await answer(manager, ["a", "b"])

    assert reply.status is Status.FAILED
    assert reply.error == "the message is too long for this model"
    assert b.calls == []
    breaker = manager.breaker("a")
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


async def test_user_stop_is_neutral_and_frees_the_probe(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    manager = make_manager(a, b)
    await _open(manager, a)
    clock.advance(10.0)
    a.push(Script(chunks=("half",), hang_after=1))
    session = Session(manager, chain=["a", "b"])
    probe = session.submit("probe")
    await first_chunk(probe)

    session.stop()
    reply = await probe

    assert reply.status is Status.STOPPED and reply.text == "half"
    breaker = manager.breaker("a")
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.consecutive_failures == 3  # unchanged by the stop
    assert (await answer(manager, ["a", "b"])).provider_id == "a"  # the next one probes
    assert breaker.state is BreakerState.CLOSED
    await session.aclose()


async def test_failure_after_first_chunk_keeps_partial_and_does_not_cascade(
    make_manager: MakeManager,
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(
        Script(
            chunks=("The answer is ", "…"), error=TransientError("connection reset"), error_after=1
        )
    )
    manager = make_manager(a, b)

    reply = await answer(manager, ["a", "b"])

    assert reply.status is Status.FAILED
    assert reply.text == "The answer is "
    assert reply.provider_id == "a"
    assert reply.error == "connection reset"
    assert b.calls == []
    assert manager.breaker("a").consecutive_failures == 1
    assert manager.snapshot().providers[0].failures == 1


async def test_no_first_chunk_times_out_and_cascades(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(hang_after=0))
    manager = make_manager(a, b, first_chunk_timeout=60.0)
    session = Session(manager, chain=["a", "b"])
    request = session.submit("q")
    await a.wait_for_calls(1)

    clock.advance(59.0)
    await asyncio.sleep(0)
    assert not request.done()
    clock.advance(1.0)
    reply = await request

    assert reply.provider_id == "b"
    assert reply.attempts[0].message == "no answer within 60 s"
    assert a.finished == [request.id]
    assert manager.breaker("a").consecutive_failures == 1
    await session.aclose()


async def test_a_stalled_stream_is_cut_off(make_manager: MakeManager, clock: ManualClock) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(chunks=("start", "never"), hang_after=1))
    manager = make_manager(a, b, first_chunk_timeout=60.0, gap_timeout=30.0)
    session = Session(manager, chain=["a", "b"])
    request = session.submit("q")
    await first_chunk(request)

    clock.advance(30.0)
    reply = await request

    assert reply.status is Status.FAILED
    assert reply.text == "start"
    assert reply.error == "the answer stalled for 30 s"
    assert b.calls == []
    await session.aclose()


async def test_a_provider_raising_anything_is_a_failure_of_its_plugin(
    make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(error=KeyError("oops")))
    manager = make_manager(a, b)

    reply = await answer(manager, ["a", "b"])

    assert reply.provider_id == "b"
    assert "plugin 'test-a' raised KeyError" in reply.attempts[0].message
    assert manager.breaker("a").consecutive_failures == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "test-a" in record.getMessage()
    assert record.exc_info is not None
    caplog.clear()


async def test_garbage_in_a_stream_is_a_malformed_stream(make_manager: MakeManager) -> None:
    a, b = ScriptedProvider(id="a"), ScriptedProvider(id="b")
    a.push(Script(chunks=(), extra=({"not": "text"},)))
    manager = make_manager(a, b)

    reply = await answer(manager, ["a", "b"])

    assert reply.provider_id == "b"
    assert reply.attempts[0].message == "a sent a dict instead of text"
    assert manager.breaker("a").consecutive_failures == 1


async def test_missing_providers_and_an_empty_chain_fail_clearly(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(ScriptedProvider(id="a"))
    reply = await answer(manager, ["ghost"])
    assert reply.status is Status.FAILED
    assert "ghost: skipped (not installed)" in reply.error
    reply = await answer(manager, [])
    assert "chain is empty" in reply.error


async def test_usage_and_timings_are_reported(
    make_manager: MakeManager,
) -> None:
    a = ScriptedProvider(id="a")
    a.push(Script(chunks=("hi",), usage=Usage(prompt_tokens=5, completion_tokens=1)))
    manager = make_manager(a)
    reply = await answer(manager, ["a"])
    assert reply.usage == Usage(prompt_tokens=5, completion_tokens=1)
    assert reply.first_chunk_seconds == 0.0
    status = manager.snapshot().providers[0]
    assert status.successes == 1 and status.first_chunk_p50 == 0.0


async def test_tracking_and_events_follow_a_request(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    a = ScriptedProvider(id="a", default_concurrency=1)
    a.push(Script(chunks=("one", "two"), gate=gate))
    manager = make_manager(a)
    events: list[EngineEvent] = []
    unsubscribe = manager.subscribe(events.append)
    session = Session(manager, chain=["a"])
    first = session.submit("first")
    other = Session(manager, chain=["a"])
    second = other.submit("second")
    await a.wait_for_calls(1)
    await asyncio.sleep(0)

    clock.advance(2.5)
    snapshot = manager.snapshot()
    phases = {r.prompt: (r.phase, r.provider_id) for r in snapshot.requests}
    assert phases == {"first": (Phase.STREAMING, "a"), "second": (Phase.WAITING, "a")}
    assert snapshot.providers[0].in_flight == 1 and snapshot.providers[0].waiting == 1
    assert snapshot.requests[0].elapsed == pytest.approx(2.5)
    gate.set()
    await asyncio.gather(first, second)

    assert manager.snapshot().requests == ()
    kinds = {event.kind for event in events}
    assert kinds == {EngineEventKind.REQUEST, EngineEventKind.PROVIDER}
    assert EngineEvent(EngineEventKind.REQUEST, first.id) in events
    unsubscribe()
    await session.aclose()
    await other.aclose()


async def test_close_closes_every_provider_even_if_one_fails(
    make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(ScriptedProvider):
        async def aclose(self) -> None:
            raise RuntimeError("cannot close")

    good = ScriptedProvider(id="good")
    manager = make_manager(Broken(id="broken"), good)
    await manager.aclose()
    assert good.closed
    assert "failed to close" in caplog.records[0].getMessage()
    caplog.clear()


async def test_progress_is_shown_and_restarts_the_first_chunk_timeout(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    loading, loaded, noted = asyncio.Event(), asyncio.Event(), asyncio.Event()
    a = ScriptedProvider(id="a")
    progress = Progress(message="loading model…")
    a.push(Script(chunks=(progress, "ready"), gate=loading, between=loaded))  # type: ignore[arg-type]
    manager = make_manager(a, first_chunk_timeout=60.0)
    session = Session(manager, chain=["a"])
    session.subscribe(lambda e: noted.set() if e.request.progress else None)
    request = session.submit("q")
    await a.wait_for_calls(1)

    clock.advance(50.0)
    loading.set()
    await noted.wait()
    clock.advance(50.0)  # 100 s after the start, but only 50 s after the progress note
    loaded.set()
    reply = await request

    assert reply.status is Status.ANSWERED
    assert reply.text == "ready"
    assert request.progress == ""  # cleared once the answer ended
    await session.aclose()
