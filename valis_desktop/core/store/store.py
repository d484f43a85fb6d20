"""The conversation store: what the window asks of the database, as awaitable operations.

Every method queues its work at once, in call order, on the store's single worker thread, and
returns an ``asyncio.Future`` of the result. Await it for the result (or the error); or drop it
for a write the UI fires and forgets (a draft, a tab moved) — it still runs, after everything
queued before it, and a failure is logged. Cancelling the wait does not cancel the work.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from valis_desktop.core.store import export, queries
from valis_desktop.core.store.database import (
    Database,
    Job,
    Opened,
    default_path,
    open_connection,
)
from valis_desktop.core.store.errors import StoreError
from valis_desktop.core.store.records import (
    Conversation,
    ConversationSummary,
    Recovery,
    SearchHit,
    StoredMessage,
    new_id,
    to_ms,
)
from valis_desktop.core.store.schema import MIGRATIONS, Migration, MigrationReport

WallClock = Callable[[], float]
"""Seconds since the Unix epoch; ``time.time`` unless a test sets the time."""


class Unset(enum.Enum):
    """The type of ``UNSET``: "not given", where ``None`` is a value (no persona, tab closed)."""

    UNSET = enum.auto()


UNSET = Unset.UNSET
"""Leaves a field of ``update_conversation`` as it is."""


class Store:
    """The conversations on disk. Build it with ``await Store.open(...)``; end with ``aclose``."""

    def __init__(
        self, database: Database, path: Path, opened: Opened, wall_clock: WallClock
    ) -> None:
        self._db = database
        self._wall_clock = wall_clock
        self.path = path
        self.recovered_from: str | None = opened.recovered_from
        """Set when the file was unreadable and was moved aside: tell the user this."""
        self.migration: MigrationReport | None = opened.migration
        """Set when an existing database was upgraded (with the backup's path)."""

    @classmethod
    async def open(
        cls,
        path: Path | str | None = None,
        *,
        wall_clock: WallClock = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> Store:
        """Open the store at ``path`` (default: ``conversations.sqlite3`` in the user's data
        directory), creating, verifying and upgrading it as needed.

        An unreadable or damaged file is moved aside and a new store started; then
        ``recovered_from`` says so. Raises ``StoreError`` (``MigrationError`` for a failed
        upgrade) when it cannot open the file without risking it. ``migrations`` is for tests.
        """
        where = default_path() if path is None else Path(path)
        database, report = await Database.start(partial(open_connection, where, migrations))
        return cls(database, where, report, wall_clock)

    async def aclose(self) -> None:
        """Finish every queued write, close the database and end the worker thread."""
        await self._db.aclose()

    def flush(self) -> asyncio.Future[None]:
        """Resolves once everything queued before it is written."""
        return self._read(_nothing)

    def recover(self) -> asyncio.Future[Recovery]:
        """Settle what a previous run left unfinished: streaming answers become
        ``interrupted`` (their text kept), pending user messages ``not sent``.

        Call it once at start-up, before any session is recorded.
        """
        return self._write(partial(queries.recover, now_ms=self.now_ms()))

    # Reading

    def list_conversations(
        self, *, limit: int | None = None, offset: int = 0
    ) -> asyncio.Future[list[ConversationSummary]]:
        """Every conversation, the most recently active first (for the History view)."""
        return self._read(partial(queries.list_conversations, limit=limit, offset=offset))

    def conversation(self, conversation_id: str) -> asyncio.Future[Conversation | None]:
        return self._read(partial(queries.conversation, conversation_id=conversation_id))

    def messages(self, conversation_id: str) -> asyncio.Future[list[StoredMessage]]:
        """The conversation's messages in order (one query)."""
        return self._read(partial(queries.messages, conversation_id=conversation_id))

    def open_tabs(self) -> asyncio.Future[list[Conversation]]:
        """The conversations whose tabs are open, in tab order."""
        return self._read(queries.open_tabs)

    def search(self, words: str, *, limit: int = 50) -> asyncio.Future[list[SearchHit]]:
        """Messages containing every word of ``words`` (the last may be the start of a word),
        best match first. Any text is safe: it is searched for, never parsed as a query."""
        return self._read(partial(queries.search, words=words, limit=limit))

    # Writing

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | Unset = UNSET,
        persona_id: str | Unset | None = UNSET,
        chain: Sequence[str] | Unset = UNSET,
        tab_position: int | Unset | None = UNSET,
        draft: str | Unset = UNSET,
    ) -> asyncio.Future[None]:
        """Save the given fields (others are left as they are), creating the conversation if
        it does not exist yet."""
        given = {
            "title": title,
            "persona_id": persona_id,
            "chain": chain,
            "tab_position": tab_position,
            "draft": draft,
        }
        fields = {name: value for name, value in given.items() if value is not UNSET}
        return self._write(
            partial(
                queries.update_conversation,
                conversation_id=conversation_id,
                fields=fields,
                now_ms=self.now_ms(),
            )
        )

    def set_tab_order(self, conversation_ids: Sequence[str]) -> asyncio.Future[None]:
        """The open tabs are exactly these, in this order; every other conversation's tab is
        closed (its history kept)."""
        return self._write(partial(queries.set_tab_order, conversation_ids=tuple(conversation_ids)))

    def close_conversation(self, conversation_id: str) -> asyncio.Future[None]:
        """Its tab was closed: it leaves the open tabs and stays in the history."""
        return self.update_conversation(conversation_id, tab_position=None)

    def delete_conversation(self, conversation_id: str) -> asyncio.Future[None]:
        """Remove the conversation, its messages and their search entries for good."""
        return self._write(partial(queries.delete_conversation, conversation_id=conversation_id))

    # Files

    def export_json(self, conversation_id: str) -> asyncio.Future[str]:
        """The conversation in the stable JSON export format (see docs/storage.md)."""
        return self._read(partial(self._export, conversation_id, export.to_json))

    def export_markdown(self, conversation_id: str) -> asyncio.Future[str]:
        """The conversation as a Markdown document for people to read."""
        return self._read(partial(self._export, conversation_id, export.to_markdown))

    def import_json(self, data: str | bytes) -> asyncio.Future[str]:
        """Add the conversation of a JSON export as a new conversation (closed, in the history)
        and return its id. A file that is not a valid export raises ``ImportFailed`` and
        imports nothing."""
        return self._write(partial(self._import, data))

    # For the recorder and for tests

    def now_ms(self) -> int:
        """The wall-clock time in milliseconds since the epoch, as stored."""
        return round(self._wall_clock() * 1000)

    def _read(self, job: Job[Any]) -> asyncio.Future[Any]:
        return self._db.submit(job, write=False)

    def _write(self, job: Job[Any], *, durable: bool = False) -> asyncio.Future[Any]:
        return self._db.submit(job, durable=durable)

    def _export(
        self,
        conversation_id: str,
        render: Callable[[Conversation, Sequence[StoredMessage], int], str],
        connection: sqlite3.Connection,
    ) -> str:
        found = queries.conversation(connection, conversation_id)
        if found is None:
            raise StoreError("That conversation no longer exists; it may have been deleted.")
        return render(found, queries.messages(connection, conversation_id), self.now_ms())

    def _import(self, data: str | bytes, connection: sqlite3.Connection) -> str:
        parsed = export.parse_json(data)
        fields = parsed.conversation
        conversation_id = new_id()
        queries.add_conversation(
            connection,
            conversation_id,
            title=fields.title,
            persona_id=fields.persona_id,
            chain=fields.chain,
            created_ms=to_ms(fields.created_at),
            updated_ms=to_ms(fields.updated_at),
        )
        ids = [new_id() for _ in parsed.messages]
        queries.add_messages(connection, conversation_id, export.message_rows(parsed.messages, ids))
        return conversation_id


def _nothing(connection: sqlite3.Connection) -> None:
    return None
