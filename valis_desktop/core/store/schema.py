"""The database schema and its migrations: the one module that knows how the tables are made.

A database's ``PRAGMA user_version`` is the number of migrations applied to it. A new database
runs every migration from the first, so the path an old database takes is the path every
database takes, and is tested on every start of a test.

Migrations are frozen once released: a change to the schema is a new ``Migration`` appended to
``MIGRATIONS``, never an edit of an old one.

Version 1: conversations and messages.
Version 2: token usage on messages, a draft per conversation, and the full-text index.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from valis_desktop.core.store.errors import MigrationError, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """The statements that take a database from ``version - 1`` to ``version``.

    Each statement runs on its own (``executescript`` would commit half-way); all of a
    migration run's statements share one transaction.
    """

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    1,
    "conversations and messages",
    (
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            persona_id TEXT,
            chain TEXT NOT NULL DEFAULT '[]',
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            tab_position INTEGER
        )
        """,
        """
        CREATE TABLE messages (
            pk INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            provider_id TEXT,
            error TEXT NOT NULL DEFAULT '',
            created_ms INTEGER NOT NULL,
            finished_ms INTEGER,
            first_chunk_seconds REAL,
            chars_per_second REAL
        )
        """,
        "CREATE UNIQUE INDEX messages_in_order ON messages (conversation_id, seq)",
        "CREATE INDEX messages_by_status ON messages (status)",
        """
        CREATE INDEX conversations_open ON conversations (tab_position)
            WHERE tab_position IS NOT NULL
        """,
    ),
)

# External content: the index stores only tokens; the text lives once, in ``messages``, and
# snippet() reads it from there. The triggers keep the two in step (a contentless index could
# not give snippets, and a second copy of every text would double the file). ``pk`` is an
# INTEGER PRIMARY KEY, so VACUUM cannot renumber the rows the index points at.
_V2 = Migration(
    2,
    "token usage, drafts and full-text search",
    (
        "ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER",
        "ALTER TABLE messages ADD COLUMN completion_tokens INTEGER",
        "ALTER TABLE conversations ADD COLUMN draft TEXT NOT NULL DEFAULT ''",
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='pk', tokenize='unicode61 remove_diacritics 2'
        )
        """,
        """
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, text) VALUES (new.pk, new.text);
        END
        """,
        """
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, text)
                VALUES ('delete', old.pk, old.text);
        END
        """,
        """
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, text)
                VALUES ('delete', old.pk, old.text);
            INSERT INTO messages_fts (rowid, text) VALUES (new.pk, new.text);
        END
        """,
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What ``migrate`` did to an existing database."""

    from_version: int
    to_version: int
    backup: Path | None
    """The copy made before migrating; ``None`` for a new database (nothing to keep)."""


def version_of(connection: sqlite3.Connection) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(
    connection: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> MigrationReport | None:
    """Bring the database at ``path`` (open on ``connection``) up to the newest version.

    An existing database is copied next to itself first (``<name>.v<N>.bak``, after the WAL is
    checkpointed into it). All steps run in one transaction: a failure rolls every one of them
    back, leaves the database as it was and raises ``MigrationError``. Returns ``None`` when
    there was nothing to do.
    """
    target = len(migrations)
    current = version_of(connection)
    if current == target:
        return None
    if current > target:
        raise StoreError(
            f"The conversation database {path} was written by a newer Valis Desktop (schema "
            f"version {current}; this one knows up to {target}). Update Valis Desktop to open "
            "it; it was left as it was."
        )
    if current == 0 and _has_tables(connection):
        raise StoreError(
            f"{path} is an SQLite database, but not one of Valis Desktop's conversation stores. "
            "Move it away or choose another path; it was left as it was."
        )
    backup = _back_up(connection, path, current) if current else None
    pending = migrations[current:]
    try:
        connection.execute("BEGIN IMMEDIATE")
        for migration in pending:
            for statement in migration.statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {target:d}")
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        kept = f" A copy made before the attempt is at {backup}." if backup else ""
        raise MigrationError(
            f"Could not upgrade the conversation database {path} from version {current} to "
            f"{target} ({error}). It was left unchanged.{kept}"
        ) from error
    if current:
        log.info("conversation database migrated from version %d to %d", current, target)
    return MigrationReport(current, target, backup)


def _has_tables(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def _back_up(connection: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the database file, complete, to ``<name>.v<version>.bak`` (never overwriting)."""
    busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    if busy:
        raise StoreError(
            f"The conversation database {path} is in use by another program (another Valis "
            "Desktop?), so it cannot be upgraded now. Close the other program and start again."
        )
    backup = path.with_name(f"{path.name}.v{version}.bak")
    if backup.exists():
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        backup = path.with_name(f"{path.name}.v{version}.{stamp}.bak")
    try:
        shutil.copy2(path, backup)
    except OSError as error:
        raise MigrationError(
            f"Could not copy the conversation database to {backup} before upgrading it "
            f"({error.strerror or error}). Nothing was changed; free some disk space or check "
            "the folder's permissions, then start again."
        ) from error
    return backup
