"""Every read and write of rows, as plain functions of a connection.

They run on the store's worker thread, inside the transaction the worker opened; nothing else
in the application writes SQL. The tables themselves are defined in ``schema``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from valis_desktop.api import Role
from valis_desktop.core.store.errors import StoreError
from valis_desktop.core.store.records import (
    Conversation,
    ConversationSummary,
    MessageStatus,
    Recovery,
    SearchHit,
    StoredMessage,
    from_ms,
)

_MATCH_START, _MATCH_END = "\x02", "\x03"
_FIRST_LINE_LENGTH = 120
_CONVERSATION_COLUMNS = "id, title, persona_id, chain, created_ms, updated_ms, tab_position, draft"
_MESSAGE_COLUMNS = (
    "id, conversation_id, seq, role, text, status, provider_id, error, created_ms, finished_ms,"
    " first_chunk_seconds, chars_per_second, prompt_tokens, completion_tokens"
)
# A user's message takes the next even number and its answer the odd one after it, so a
# question and its answer stay side by side even when the user typed ahead.
_NEXT_TURN = "(SELECT COALESCE(MAX(seq) / 2 + 1, 0) * 2 FROM messages WHERE conversation_id = ?)"

UPDATABLE = frozenset({"title", "persona_id", "chain", "tab_position", "draft"})


# Conversations


def ensure_conversation(
    connection: sqlite3.Connection,
    conversation_id: str,
    persona_id: str | None,
    chain: Sequence[str],
    tab_position: int | None,
    now_ms: int,
) -> None:
    """Create the conversation unless it exists (an existing one is left as it is)."""
    connection.execute(
        "INSERT INTO conversations (id, persona_id, chain, created_ms, updated_ms, tab_position)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (conversation_id, persona_id, json.dumps(list(chain)), now_ms, now_ms, tab_position),
    )


def add_conversation(
    connection: sqlite3.Connection,
    conversation_id: str,
    *,
    title: str,
    persona_id: str | None,
    chain: Sequence[str],
    created_ms: int,
    updated_ms: int,
) -> None:
    """Insert a whole conversation (an import), its tab closed."""
    connection.execute(
        "INSERT INTO conversations (id, title, persona_id, chain, created_ms, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (conversation_id, title, persona_id, json.dumps(list(chain)), created_ms, updated_ms),
    )


def update_conversation(
    connection: sqlite3.Connection,
    conversation_id: str,
    fields: Mapping[str, Any],
    now_ms: int,
) -> None:
    """Set ``fields`` (names from ``UPDATABLE``), creating the conversation if needed."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not conversation fields: {sorted(unknown)}")
    ensure_conversation(connection, conversation_id, None, (), None, now_ms)
    values = dict(fields)
    if "chain" in values:
        values["chain"] = json.dumps(list(values["chain"]))
    assignments = "".join(f", {name} = :{name}" for name in values)
    connection.execute(
        f"UPDATE conversations SET updated_ms = :now{assignments} WHERE id = :id",
        {**values, "now": now_ms, "id": conversation_id},
    )


def set_tab_order(connection: sqlite3.Connection, conversation_ids: Sequence[str]) -> None:
    """Open exactly these conversations' tabs, in this order; close every other."""
    connection.execute(
        "UPDATE conversations SET tab_position = NULL WHERE tab_position IS NOT NULL"
    )
    connection.executemany(
        "UPDATE conversations SET tab_position = ? WHERE id = ?",
        list(enumerate(conversation_ids)),
    )


def delete_conversation(connection: sqlite3.Connection, conversation_id: str) -> None:
    # Messages first, explicitly: their delete trigger removes them from the full-text index.
    connection.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
    connection.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


def conversation(connection: sqlite3.Connection, conversation_id: str) -> Conversation | None:
    row = connection.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    return None if row is None else _conversation(row)


def open_tabs(connection: sqlite3.Connection) -> list[Conversation]:
    rows = connection.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations"
        " WHERE tab_position IS NOT NULL ORDER BY tab_position, created_ms"
    )
    return [_conversation(row) for row in rows]


def list_conversations(
    connection: sqlite3.Connection, limit: int | None, offset: int
) -> list[ConversationSummary]:
    rows = connection.execute(
        "SELECT c.id, c.title, c.created_ms, c.updated_ms, c.tab_position,"
        " (SELECT substr(m.text, 1, 400) FROM messages m"
        "  WHERE m.conversation_id = c.id AND m.role = 'user' ORDER BY m.seq LIMIT 1),"
        " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
        " FROM conversations c ORDER BY c.updated_ms DESC, c.id LIMIT ? OFFSET ?",
        (-1 if limit is None else limit, offset),
    )
    return [
        ConversationSummary(
            id=id_,
            title=title,
            first_line=_first_line(first or ""),
            created_at=from_ms(created),
            updated_at=from_ms(updated),
            tab_position=tab,
            message_count=count,
        )
        for id_, title, created, updated, tab, first, count in rows
    ]


# Messages


def messages(connection: sqlite3.Connection, conversation_id: str) -> list[StoredMessage]:
    rows = connection.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
        (conversation_id,),
    )
    return [_message(row) for row in rows]


def add_user_message(
    connection: sqlite3.Connection, conversation_id: str, message_id: str, text: str, now_ms: int
) -> None:
    """Write a user's message, pending, as the next turn of its conversation."""
    connection.execute(
        f"INSERT INTO messages (id, conversation_id, seq, role, text, status, created_ms)"
        f" VALUES (?, ?, {_NEXT_TURN}, 'user', ?, 'pending', ?)",
        (message_id, conversation_id, conversation_id, text, now_ms),
    )
    _touch(connection, conversation_id, now_ms)


def requeue_user_message(
    connection: sqlite3.Connection, conversation_id: str, message_id: str, now_ms: int
) -> str:
    """Make a user's message that was never answered pending again, as the newest turn;
    returns its text."""
    row = connection.execute(
        "SELECT text FROM messages WHERE id = ? AND conversation_id = ? AND role = 'user'"
        " AND status IN ('not sent', 'cancelled', 'pending')",
        (message_id, conversation_id),
    ).fetchone()
    if row is None:
        raise StoreError("That message cannot be sent again: it was sent already or deleted.")
    connection.execute(
        f"UPDATE messages SET seq = {_NEXT_TURN}, status = 'pending', error = '', created_ms = ?"
        " WHERE id = ?",
        (conversation_id, now_ms, message_id),
    )
    _touch(connection, conversation_id, now_ms)
    text: str = row[0]
    return text


def withdraw_user_message(connection: sqlite3.Connection, message_id: str) -> None:
    """Remove a pending message that its session refused (queue full, chat closed)."""
    connection.execute("DELETE FROM messages WHERE id = ? AND status = 'pending'", (message_id,))


def start_answer(
    connection: sqlite3.Connection,
    user_id: str,
    answer_id: str,
    persona_id: str | None,
    chain: Sequence[str],
    now_ms: int,
) -> None:
    """The request was handed to a provider: its message is sent, its answer begins streaming,
    and the conversation notes the chain and persona now in use."""
    connection.execute("UPDATE messages SET status = 'sent' WHERE id = ?", (user_id,))
    connection.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, status, created_ms)"
        " SELECT ?, conversation_id, seq + 1, 'assistant', 'streaming', ? FROM messages"
        " WHERE id = ?",
        (answer_id, now_ms, user_id),
    )
    connection.execute(
        "UPDATE conversations SET persona_id = ?, chain = ?, updated_ms = ?"
        " WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
        (persona_id, json.dumps(list(chain)), now_ms, user_id),
    )


def checkpoint(
    connection: sqlite3.Connection,
    answers: Iterable[tuple[str, str | None, float | None, str]],
) -> None:
    """Save streaming answers' text so far: (text, provider, first-chunk seconds, id)."""
    connection.executemany(
        "UPDATE messages SET text = ?, provider_id = ?, first_chunk_seconds = ?"
        " WHERE id = ? AND status = 'streaming'",
        answers,
    )


def finish_message(
    connection: sqlite3.Connection, message_id: str, values: Mapping[str, object], now_ms: int
) -> None:
    """Record a message's end: its status, and for an answer its text, provider and figures."""
    assignments = "".join(f", {name} = :{name}" for name in values)
    connection.execute(
        f"UPDATE messages SET finished_ms = :now{assignments} WHERE id = :id",
        {**values, "now": now_ms, "id": message_id},
    )
    connection.execute(
        "UPDATE conversations SET updated_ms = ?"
        " WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
        (now_ms, message_id),
    )


def recover(connection: sqlite3.Connection, now_ms: int) -> Recovery:
    interrupted = connection.execute(
        "UPDATE messages SET status = 'interrupted', finished_ms = ?,"
        " error = 'Valis Desktop stopped before this answer was complete.'"
        " WHERE status = 'streaming'",
        (now_ms,),
    ).rowcount
    not_sent = connection.execute(
        "UPDATE messages SET status = 'not sent',"
        " error = 'Valis Desktop stopped before this message was sent.' WHERE status = 'pending'"
    ).rowcount
    return Recovery(interrupted=interrupted, not_sent=not_sent)


def add_messages(
    connection: sqlite3.Connection, conversation_id: str, rows: Iterable[Sequence[object]]
) -> None:
    """Insert whole messages (an import): rows in ``_MESSAGE_COLUMNS`` order, minus the
    conversation id."""
    columns = _MESSAGE_COLUMNS.replace("conversation_id, ", "")
    connection.executemany(
        f"INSERT INTO messages (conversation_id, {columns}) VALUES (?, {', '.join('?' * 13)})",
        ((conversation_id, *row) for row in rows),
    )


# Search


def search(connection: sqlite3.Connection, words: str, limit: int) -> list[SearchHit]:
    """Messages matching every word of ``words`` (the last one as a prefix), best first."""
    expression = match_expression(words)
    if expression is None:
        return []
    rows = connection.execute(
        "SELECT m.conversation_id, c.title, m.id, m.role, m.created_ms,"
        " snippet(messages_fts, 0, char(2), char(3), '…', 16)"
        " FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid"
        " JOIN conversations c ON c.id = m.conversation_id"
        " WHERE messages_fts MATCH ? ORDER BY messages_fts.rank LIMIT ?",
        (expression, limit),
    )
    return [
        SearchHit(
            conversation_id=conversation_id,
            conversation_title=title,
            message_id=message_id,
            role=Role(role),
            created_at=from_ms(created),
            parts=_snippet_parts(snippet),
        )
        for conversation_id, title, message_id, role, created, snippet in rows
    ]


def match_expression(words: str) -> str | None:
    """An FTS5 query that finds ``words`` whatever they contain: each whitespace-separated word
    becomes a quoted phrase (so ``AND``, ``*``, ``-``, quotes and parentheses are just text),
    the last one a prefix. ``None`` when there is nothing to look for."""
    terms = [term for term in words.split() if any(char.isalnum() for char in term)]
    if not terms:
        return None
    phrases = ['"' + term.replace('"', '""') + '"' for term in terms]
    return " ".join(phrases) + "*"


# Rows to records


def _conversation(row: Sequence[Any]) -> Conversation:
    id_, title, persona_id, chain, created, updated, tab, draft = row
    return Conversation(
        id=id_,
        title=title,
        persona_id=persona_id,
        chain=tuple(json.loads(chain)),
        created_at=from_ms(created),
        updated_at=from_ms(updated),
        tab_position=tab,
        draft=draft,
    )


def _message(row: Sequence[Any]) -> StoredMessage:
    (id_, conversation_id, seq, role, text, status, provider, error, created, finished) = row[:10]
    first_chunk, speed, prompt_tokens, completion_tokens = row[10:]
    return StoredMessage(
        id=id_,
        conversation_id=conversation_id,
        seq=seq,
        role=Role(role),
        text=text,
        status=MessageStatus(status),
        provider_id=provider,
        error=error,
        created_at=from_ms(created),
        finished_at=None if finished is None else from_ms(finished),
        first_chunk_seconds=first_chunk,
        chars_per_second=speed,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _snippet_parts(snippet: str) -> tuple[tuple[str, bool], ...]:
    parts: list[tuple[str, bool]] = []
    for piece in snippet.split(_MATCH_START):
        match, _, rest = piece.rpartition(_MATCH_END)
        if match:
            parts.append((match, True))
        if rest:
            parts.append((rest, False))
    return tuple(parts)


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= _FIRST_LINE_LENGTH else line[: _FIRST_LINE_LENGTH - 1] + "…"


def _touch(connection: sqlite3.Connection, conversation_id: str, now_ms: int) -> None:
    connection.execute(
        "UPDATE conversations SET updated_ms = ? WHERE id = ?", (now_ms, conversation_id)
    )
