"""The store under load: many sessions streaming while it writes and the UI reads, writes that
nobody awaits, and a clean close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from valis_desktop.api import ChatRequest
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session
from valis_desktop.core.store import MessageStatus, Recorder, Store
from valis_desktop.testing import Script, ScriptedProvider

from .fixtures import stores
from .fixtures.stores import WallClock, fts_in_sync, query, store_threads

MakeManager = Callable[..., ProviderManager]

no_store_threads = stores.no_store_threads
wall_clock = stores.wall_clock
store_path = stores.store_path
store = stores.store

SESSIONS = 10
MESSAGES = 3
CHUNKS = 40


async def test_ten_sessions_stream_at_once_while_the_store_writes_and_reads(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    everyone_asked = asyncio.Event()  # so that all ten streams overlap

    def long_answer(request: ChatRequest) -> Script:
        chunks = [f"{request.prompt} part {n}. " for n in range(CHUNKS)]
        return Script(chunks=chunks, cooperative=True, gate=everyone_asked)

    provider = ScriptedProvider(id="p", default=long_answer, default_concurrency=SESSIONS)
    manager = make_manager(provider)
    sessions = [Session(manager, chain=["p"]) for _ in range(SESSIONS)]
    # The checkpoints' own clock: moving it does not move the engine's timeouts.
    clock = ManualClock()
    recorder = Recorder(store, clock=clock, interval=1.0)
    for position, session in enumerate(sessions):
        recorder.follow(session, tab_position=position)

    async def chat(session: Session, number: int) -> list[Status]:
        requests = [await recorder.submit(session, f"s{number}m{m}") for m in range(MESSAGES)]
        return [(await request).status for request in requests]

    everything = asyncio.gather(*(chat(s, n) for n, s in enumerate(sessions)))
    await provider.wait_for_calls(SESSIONS)
    everyone_asked.set()
    checkpoints = reads = 0
    while not everything.done():
        # Turns of the loop, not time: checkpoints fire and the UI reads while chunks stream.
        clock.advance(1.0)
        checkpoints += 1
        if checkpoints % 5 == 0:
            await store.search("part")
            await store.list_conversations()
            reads += 1
        await asyncio.sleep(0)
    statuses = await everything
    await recorder.aclose()

    assert statuses == [[Status.ANSWERED] * MESSAGES] * SESSIONS
    assert provider.peak == SESSIONS and reads > 0
    for number, session in enumerate(sessions):
        messages = await store.messages(session.id)
        assert [(m.text, m.status) for m in messages] == [
            item
            for m in range(MESSAGES)
            for item in (
                (f"s{number}m{m}", MessageStatus.SENT),
                (
                    "".join(f"s{number}m{m} part {n}. " for n in range(CHUNKS)),
                    MessageStatus.ANSWERED,
                ),
            )
        ]
    assert [tab.id for tab in await store.open_tabs()] == [s.id for s in sessions]
    assert fts_in_sync(store_path)


async def test_writes_nobody_awaits_run_in_the_order_they_were_made(store: Store) -> None:
    for number in range(100):
        store.update_conversation("c", title=f"title {number}", tab_position=number)
    found = await store.conversation("c")
    assert found is not None and (found.title, found.tab_position) == ("title 99", 99)


async def test_closing_writes_everything_queued_and_ends_the_thread(
    store_path: Path, wall_clock: WallClock
) -> None:
    store = await Store.open(store_path, wall_clock=wall_clock)
    for number in range(50):
        store.update_conversation(f"c{number}", title="queued before closing")
    await store.aclose()
    assert store_threads() == []
    assert query(store_path, "SELECT COUNT(*) FROM conversations") == [(50,)]


async def test_giving_up_a_wait_does_not_cancel_the_write(store: Store) -> None:
    write = store.update_conversation("c", title="kept")
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    found = await store.conversation("c")
    assert found is not None and found.title == "kept"


async def test_a_failing_write_is_logged_and_later_writes_go_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    failed = store.update_conversation("c", chain=5)  # type: ignore[arg-type]
    store.update_conversation("d", title="after the failure")
    found = await store.conversation("d")
    assert found is not None and found.title == "after the failure"
    assert failed.done() and failed.exception() is not None
    assert [r.getMessage() for r in caplog.records] == [
        "conversation store: update_conversation failed"
    ]
    caplog.clear()
