"""A real crash: a recording chat process is killed with SIGKILL in the middle of an answer,
and the next start finds everything the user wrote and everything they had read."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from valis_desktop.api import Role
from valis_desktop.core.store import MessageStatus, Store

CRASH_APP = Path(__file__).with_name("crash_app.py")
STARTUP_LIMIT = 60.0  # seconds; a bound for a stuck child, not a wait


async def run_until_streaming(database: Path) -> list[str]:
    """Start the chat process, wait until it says an answer is on disk part way, kill it;
    returns the ids of its two chats."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(CRASH_APP), str(database), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_LIMIT)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    word, *chat_ids = line.decode().split()
    assert word == "streaming"
    return chat_ids


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_a_killed_app_loses_nothing(tmp_path: Path) -> None:
    database = tmp_path / "conversations.sqlite3"
    first, second = await run_until_streaming(database)

    store = await Store.open(database)
    try:
        assert store.recovered_from is None
        assert [(tab.id, tab.title) for tab in await store.open_tabs()] == [
            (first, "Chat 1"),
            (second, "Chat 2"),
        ]
        before = await store.messages(first)
        assert [(m.role, m.text) for m in before if m.role is Role.USER] == [
            (Role.USER, "question 1"),
            (Role.USER, "typed ahead 1"),
        ]
        assert [m.text for m in await store.messages(second) if m.role is Role.USER] == [
            "question 2",
            "typed ahead 2",
        ]
        partial = before[1]
        assert partial.status is MessageStatus.STREAMING
        assert partial.text.startswith("question 1, part 0. ")

        recovery = await store.recover()

        assert recovery.interrupted >= 1 and recovery.not_sent >= 1
        after = await store.messages(first)
        assert [(m.text, m.status) for m in after] == [
            ("question 1", MessageStatus.SENT),
            (partial.text, MessageStatus.INTERRUPTED),
            ("typed ahead 1", MessageStatus.NOT_SENT),
        ]
        for message in await store.messages(second):
            assert message.status in (
                MessageStatus.SENT,
                MessageStatus.INTERRUPTED,
                MessageStatus.NOT_SENT,
            )
    finally:
        await store.aclose()
