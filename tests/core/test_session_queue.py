"""The session queue: strict order, type-ahead, cancel, stop, close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from valis_desktop.api import ChatRequest, Role
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import EventKind, Request, Status
from valis_desktop.core.session import QueueFull, Session, SessionClosed
from valis_desktop.testing import Script, ScriptedProvider, first_chunk

MakeManager = Callable[..., ProviderManager]


def numbered_answer(request: ChatRequest) -> Script:
    return Script(chunks=("answer to ", request.prompt), cooperative=True)


def assistant_texts(request: ChatRequest) -> list[str]:
    return [m.content for m in request.messages if m.role is Role.ASSISTANT]


async def test_ten_submits_run_strictly_in_order(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p", default=numbered_answer)
    session = Session(make_manager(provider), chain=["p"])
    events: list[tuple[EventKind, str]] = []
    session.subscribe(
        lambda e: (
            events.append((e.kind, e.request.prompt))
            if e.kind in (EventKind.STARTED, EventKind.FINISHED)
            else None
        )
    )

    requests = [session.submit(f"q{i}") for i in range(10)]
    replies = await asyncio.gather(*requests)

    assert [r.status for r in replies] == [Status.ANSWERED] * 10
    assert [r.text for r in replies] == [f"answer to q{i}" for i in range(10)]
    assert provider.peak == 1
    assert [call.prompt for call in provider.calls] == [f"q{i}" for i in range(10)]
    # k+1 starts only after k has finished
    assert events == [
        (kind, f"q{i}") for i in range(10) for kind in (EventKind.STARTED, EventKind.FINISHED)
    ]
    for i, call in enumerate(provider.calls):
        assert assistant_texts(call) == [f"answer to q{j}" for j in range(i)]
        assert call.messages[-1].content == f"q{i}"
    assert session.running is None and not session.busy


async def test_sessions_overlap_and_each_stays_ordered(make_manager: MakeManager) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(
        id="p", default=lambda r: Script(chunks=("a:", r.prompt), gate=gate, cooperative=True)
    )
    manager = make_manager(provider)
    sessions = [Session(manager, chain=["p"]) for _ in range(3)]
    requests = [s.submit(f"s{n}-q{i}") for i in range(5) for n, s in enumerate(sessions)]

    await provider.wait_for_calls(3)
    assert provider.active == 3  # one per session, all at once
    gate.set()
    replies = await asyncio.gather(*requests)

    assert all(r.status is Status.ANSWERED for r in replies)
    assert provider.peak == 3
    for n, session in enumerate(sessions):
        prompts = [c.prompt for c in provider.calls if c.session_id == session.id]
        assert prompts == [f"s{n}-q{i}" for i in range(5)]
        texts = [m.content for m in session.history if m.role is Role.ASSISTANT]
        assert texts == [f"a:s{n}-q{i}" for i in range(5)]


async def test_cancelled_queued_request_never_reaches_the_provider(
    make_manager: MakeManager,
) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p")
    provider.push(Script(gate=gate))
    session = Session(make_manager(provider), chain=["p"])
    first, second, third = (session.submit(text) for text in ("one", "two", "three"))
    await provider.wait_for_calls(1)

    second.cancel()
    assert [r.prompt for r in session.queued] == ["three"]
    gate.set()
    replies = await asyncio.gather(first, second, third)

    assert [r.status for r in replies] == [Status.ANSWERED, Status.CANCELLED, Status.ANSWERED]
    assert [c.prompt for c in provider.calls] == ["one", "three"]
    assert all("two" not in m.content for c in provider.calls for m in c.messages)


async def test_stop_keeps_partial_text_and_the_next_request_runs(
    make_manager: MakeManager,
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("partial ", "never"), hang_after=1))
    session = Session(make_manager(provider), chain=["p"])
    running = session.submit("long question")
    queued = session.submit("next question")

    assert await first_chunk(running) == "partial "
    session.stop()
    stopped = await running
    following = await queued

    assert stopped.status is Status.STOPPED
    assert stopped.text == "partial "
    assert stopped.provider_id == "p"
    assert following.status is Status.ANSWERED
    assert provider.finished[0] == running.id  # the provider's stream was closed
    # the stopped turn is context for the next one
    assert assistant_texts(provider.calls[1]) == ["partial "]


async def test_a_caller_that_gives_up_waiting_breaks_nothing(make_manager: MakeManager) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p", default=lambda r: Script(chunks=(r.prompt,), gate=gate))
    session = Session(make_manager(provider), chain=["p"])
    requests = [session.submit(f"q{i}") for i in range(4)]

    async def wait_for(request: Request) -> str:
        return (await request).text

    impatient = asyncio.create_task(wait_for(requests[0]))
    also_impatient = asyncio.create_task(wait_for(requests[2]))
    await provider.wait_for_calls(1)

    impatient.cancel()
    also_impatient.cancel()
    await asyncio.wait([impatient, also_impatient])
    gate.set()
    replies = await asyncio.gather(*requests)

    assert impatient.cancelled() and also_impatient.cancelled()
    assert [r.status for r in replies] == [Status.ANSWERED] * 4
    assert [r.text for r in replies] == ["q0", "q1", "q2", "q3"]


async def test_closing_a_busy_session_cancels_everything(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("so far",), hang_after=1))
    manager = make_manager(provider)
    session = Session(manager, chain=["p"])
    running = session.submit("one")
    queued = [session.submit("two"), session.submit("three")]
    await first_chunk(running)

    await session.aclose()

    assert (await running).status is Status.STOPPED
    assert (await running).text == "so far"
    assert [(await r).status for r in queued] == [Status.CANCELLED] * 2
    assert [c.prompt for c in provider.calls] == ["one"]
    assert manager.snapshot().requests == ()
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []
    with pytest.raises(SessionClosed):
        session.submit("four")


async def test_full_queue_is_a_clear_error(make_manager: MakeManager) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p", default=lambda r: Script(gate=gate))
    session = Session(make_manager(provider), chain=["p"], max_queue=3)
    accepted = [session.submit("runs")]
    await provider.wait_for_calls(1)
    accepted += [session.submit(f"waits {i}") for i in range(3)]

    with pytest.raises(QueueFull, match="3 messages are already waiting"):
        session.submit("one too many")
    gate.set()
    assert all(r.status is Status.ANSWERED for r in await asyncio.gather(*accepted))


async def test_worker_exists_only_while_there_is_work(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p")
    session = Session(make_manager(provider), chain=["p"])
    before = asyncio.all_tasks()
    request = session.submit("hi")
    assert len(asyncio.all_tasks() - before) == 1
    await request
    await asyncio.sleep(0)  # let the finished worker task complete its last step
    assert asyncio.all_tasks() == before


async def test_two_sessions_never_see_each_others_messages(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p", default=numbered_answer)
    manager = make_manager(provider)
    left, right = Session(manager, chain=["p"]), Session(manager, chain=["p"])
    pending = []
    for i in range(6):
        pending.append(left.submit(f"left {i}"))
        pending.append(right.submit(f"right {i}"))
    await asyncio.gather(*pending)

    for call in provider.calls:
        side = "left" if call.session_id == left.id else "right"
        assert all(side in m.content for m in call.messages)


async def test_stream_yields_chunks_in_order(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("a", "b", "c"), cooperative=True))
    session = Session(make_manager(provider), chain=["p"])
    request = session.submit("x")
    assert [chunk async for chunk in request.stream()] == ["a", "b", "c"]
    reply = await request
    assert reply.text == "abc"
    assert reply.first_chunk_seconds is not None
