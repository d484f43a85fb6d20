"""The recorder: write-ahead of the user's message, checkpoints while streaming, every ending
recorded, and a restored conversation that continues with its context."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from valis_desktop.api import ChatRequest, Message, Role, TransientError, Usage
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import QueueFull, Session
from valis_desktop.core.store import MessageStatus, Recorder, Store, history_from
from valis_desktop.testing import Script, ScriptedProvider, next_chunk

from .fixtures import stores
from .fixtures.stores import fts_in_sync, query

MakeManager = Callable[..., ProviderManager]

# Fixtures shared by the store's tests (see fixtures/stores.py).
no_store_threads = stores.no_store_threads
wall_clock = stores.wall_clock
store_path = stores.store_path
store = stores.store


def saved(path: Path, conversation_id: str) -> list[tuple[object, ...]]:
    """(role, text, status) of a conversation's messages, in order, read from the file."""
    return query(
        path,
        "SELECT role, text, status FROM messages WHERE conversation_id = ? ORDER BY seq",
        conversation_id,
    )


async def test_the_user_message_is_on_disk_before_the_provider_receives_it(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    on_disk_when_asked: list[list[object]] = []

    def answer(request: ChatRequest) -> Script:
        # Runs as the provider receives the request; reads the file as another process would.
        rows = query(store_path, "SELECT text FROM messages WHERE role = 'user' ORDER BY seq")
        on_disk_when_asked.append([text for (text,) in rows])
        return Script(chunks=("ok",))

    session = Session(make_manager(ScriptedProvider(id="p", default=answer)), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)

    first = await recorder.submit(session, "first question")
    second = await recorder.submit(session, "second question")
    await asyncio.gather(first, second)

    # Each question is on disk when its request reaches the provider (the second may already
    # be there when the first is asked: it was written while the first was starting).
    first_seen, second_seen = on_disk_when_asked
    assert first_seen[0] == "first question"
    assert second_seen == ["first question", "second question"]
    await store.flush()
    assert saved(store_path, session.id) == [
        ("user", "first question", "sent"),
        ("assistant", "ok", "answered"),
        ("user", "second question", "sent"),
        ("assistant", "ok", "answered"),
    ]
    await recorder.aclose()


async def test_a_streaming_answer_is_checkpointed_each_interval_and_at_its_end(
    store: Store, store_path: Path, make_manager: MakeManager, clock: ManualClock
) -> None:
    between = asyncio.Event()
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("one ", "two ", "three ", "four"), between=between))
    session = Session(make_manager(provider), chain=["p"])
    recorder = Recorder(store, clock=clock, interval=1.0)
    recorder.follow(session)

    request = await recorder.submit(session, "count")
    assert await next_chunk(request) == "one "
    await store.flush()
    assert saved(store_path, session.id)[1] == ("assistant", "", "streaming")
    assert recorder.ids(request) == tuple(m.id for m in await store.messages(session.id))

    clock.advance(1.0)
    await store.flush()
    assert saved(store_path, session.id)[1] == ("assistant", "one ", "streaming")

    # Two chunks between checkpoints: kept in memory, written together at the next one.
    between.set()
    await next_chunk(request)
    between.set()
    await next_chunk(request)
    await store.flush()
    assert saved(store_path, session.id)[1] == ("assistant", "one ", "streaming")
    clock.advance(1.0)
    await store.flush()
    assert saved(store_path, session.id)[1] == ("assistant", "one two three ", "streaming")

    between.set()
    reply = await request
    assert recorder.ids(request) is None  # no longer in progress
    await store.flush()
    assert saved(store_path, session.id)[1] == ("assistant", "one two three four", "answered")
    [answer] = [m for m in await store.messages(session.id) if m.role is Role.ASSISTANT]
    assert answer.provider_id == "p"
    assert answer.first_chunk_seconds == reply.first_chunk_seconds
    assert answer.finished_at is not None
    assert fts_in_sync(store_path)
    await recorder.aclose()


async def test_stopped_and_failed_answers_keep_their_status_and_partial_text(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(
        Script(chunks=("half an ", "answer"), hang_after=1),
        Script(
            chunks=("broken ", "off"), error=TransientError("the server went away"), error_after=1
        ),
        Script(chunks=("x",), error=TransientError("HTTP 503")),
    )
    session = Session(make_manager(provider), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)

    stopped = await recorder.submit(session, "stop me")
    await next_chunk(stopped)
    session.stop()
    failed = await recorder.submit(session, "fail part way")
    nothing = await recorder.submit(session, "fail at once")
    await asyncio.gather(stopped, failed, nothing)
    await store.flush()

    assert saved(store_path, session.id) == [
        ("user", "stop me", "sent"),
        ("assistant", "half an ", "stopped"),
        ("user", "fail part way", "sent"),
        ("assistant", "broken ", "failed"),
        ("user", "fail at once", "sent"),
        ("assistant", "", "failed"),
    ]
    messages = await store.messages(session.id)
    assert "the server went away" in messages[3].error
    assert "HTTP 503" in messages[5].error
    assert [m.provider_id for m in messages[1::2]] == ["p", "p", None]
    await recorder.aclose()


async def test_a_cancelled_message_is_kept_as_cancelled_without_an_answer(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("done",), gate=gate))
    session = Session(make_manager(provider), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)

    running = await recorder.submit(session, "first")
    queued = await recorder.submit(session, "never mind")
    queued.cancel()
    gate.set()
    await running
    await store.flush()

    assert saved(store_path, session.id) == [
        ("user", "first", "sent"),
        ("assistant", "done", "answered"),
        ("user", "never mind", "cancelled"),
    ]
    await recorder.aclose()


async def test_answers_stay_next_to_their_questions_when_the_user_types_ahead(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    session = Session(make_manager(ScriptedProvider(id="p")), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)
    requests = [await recorder.submit(session, f"q{i}") for i in range(3)]
    await asyncio.gather(*requests)
    await store.flush()
    assert [text for _, text, _ in saved(store_path, session.id)] == [
        "q0", "re: q0", "q1", "re: q1", "q2", "re: q2",
    ]  # fmt: skip
    await recorder.aclose()


async def test_a_message_submitted_to_the_session_directly_is_recorded_too(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    session = Session(make_manager(ScriptedProvider(id="p")), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)
    await session.submit("straight in")
    await store.flush()
    assert saved(store_path, session.id) == [
        ("user", "straight in", "sent"),
        ("assistant", "re: straight in", "answered"),
    ]
    await recorder.aclose()


async def test_a_message_the_session_refuses_is_withdrawn(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p", default=lambda r: Script(chunks=("a",), gate=gate))
    session = Session(make_manager(provider), chain=["p"], max_queue=1)
    recorder = Recorder(store)
    recorder.follow(session)
    running = await recorder.submit(session, "running")
    await provider.wait_for_calls(1)
    waiting = await recorder.submit(session, "waiting")
    with pytest.raises(QueueFull):
        await recorder.submit(session, "one too many")
    gate.set()
    await asyncio.gather(running, waiting)
    await store.flush()
    assert "one too many" not in [text for _, text, _ in saved(store_path, session.id)]
    await recorder.aclose()


async def test_usage_and_speed_are_recorded(store: Store, make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("a", "b"), usage=Usage(prompt_tokens=7, completion_tokens=2)))
    session = Session(make_manager(provider), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(session)
    reply = await (await recorder.submit(session, "count tokens"))
    await store.flush()
    answer = (await store.messages(session.id))[1]
    assert (answer.prompt_tokens, answer.completion_tokens) == (7, 2)
    assert answer.chars_per_second == reply.chars_per_second
    await recorder.aclose()


async def test_a_restored_conversation_continues_with_its_context(
    store: Store, make_manager: MakeManager
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(
        Script(chunks=("Lisbon is ", "hilly")),
        Script(chunks=("Take ", "the tram"), hang_after=1),
        Script(chunks=("x",), error=TransientError("down")),
    )
    manager = make_manager(provider)
    first = Session(manager, chain=["p"])
    recorder = Recorder(store)
    recorder.follow(first, tab_position=0)
    await (await recorder.submit(first, "Tell me about Lisbon"))
    stopped = await recorder.submit(first, "How do I get around?")
    await next_chunk(stopped)
    first.stop()
    await stopped
    await (await recorder.submit(first, "Lost question"))  # no text: not in the history
    await recorder.aclose()
    await first.aclose()

    [tab] = await store.open_tabs()
    history = history_from(await store.messages(tab.id))
    assert history == first.history
    restored = Session(manager, chain=tab.chain, session_id=tab.id, history=history)
    recorder = Recorder(store)
    recorder.follow(restored)
    await (await recorder.submit(restored, "And the food?"))

    context = [(m.role, m.content) for m in provider.calls[-1].messages]
    assert context == [
        (Role.USER, "Tell me about Lisbon"),
        (Role.ASSISTANT, "Lisbon is hilly"),
        (Role.USER, "How do I get around?"),
        (Role.ASSISTANT, "Take "),
        (Role.USER, "And the food?"),
    ]
    await store.flush()
    assert [m.text for m in await store.messages(tab.id)][-2:] == [
        "And the food?",
        "re: And the food?",
    ]
    await recorder.aclose()


async def test_quitting_leaves_unfinished_work_for_recovery_and_resend(
    store: Store, store_path: Path, make_manager: MakeManager, clock: ManualClock
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("partial ", "rest"), hang_after=1))
    session = Session(make_manager(provider), chain=["p"])
    recorder = Recorder(store, clock=clock)
    recorder.follow(session)
    streaming = await recorder.submit(session, "long one")
    await next_chunk(streaming)
    await recorder.submit(session, "typed ahead")

    await recorder.aclose()  # the app quits: the recorder lets go first
    await session.aclose()
    assert saved(store_path, session.id) == [
        ("user", "long one", "sent"),
        ("assistant", "partial ", "streaming"),
        ("user", "typed ahead", "pending"),
    ]

    recovery = await store.recover()
    assert (recovery.interrupted, recovery.not_sent) == (1, 1)
    messages = await store.messages(session.id)
    assert [(m.text, m.status) for m in messages] == [
        ("long one", MessageStatus.SENT),
        ("partial ", MessageStatus.INTERRUPTED),
        ("typed ahead", MessageStatus.NOT_SENT),
    ]
    assert messages[1].error and messages[2].error

    restored = Session(
        make_manager(provider), chain=["p"], session_id=session.id, history=history_from(messages)
    )
    recorder = Recorder(store)
    recorder.follow(restored)
    reply = await (await recorder.resend(restored, messages[2].id))
    assert reply.status is Status.ANSWERED
    await store.flush()
    assert saved(store_path, session.id)[2:] == [
        ("user", "typed ahead", "sent"),
        ("assistant", "re: typed ahead", "answered"),
    ]
    assert provider.calls[-1].messages[:2] == (
        Message(role=Role.USER, content="long one"),
        Message(role=Role.ASSISTANT, content="partial "),
    )
    await recorder.aclose()
