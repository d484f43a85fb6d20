"""Opening the database file: a new one, an old one to migrate, a damaged one to move aside,
and what a previous run left unfinished."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from valis_desktop.core.store import (
    SCHEMA_VERSION,
    MessageStatus,
    MigrationError,
    Store,
    StoreClosed,
    StoreError,
)
from valis_desktop.core.store.schema import MIGRATIONS, Migration

from .fixtures import make_v1, stores
from .fixtures.stores import WallClock, copy_v1, fts_in_sync, query, store_threads

no_store_threads = stores.no_store_threads
wall_clock = stores.wall_clock
store_path = stores.store_path
store = stores.store


def columns(path: Path, table: str) -> list[str]:
    return [str(row[1]) for row in query(path, f"PRAGMA table_info({table})")]


async def test_a_new_store_is_created_in_wal_mode_at_the_newest_version(
    store: Store, store_path: Path
) -> None:
    assert SCHEMA_VERSION == 2
    assert query(store_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(store_path, "PRAGMA journal_mode") == [("wal",)]
    settings = await store._read(
        lambda c: [
            c.execute(f"PRAGMA {name}").fetchone()[0] for name in ("synchronous", "foreign_keys")
        ]
    )
    assert settings == [1, 1]  # NORMAL, on
    assert store.migration is not None and store.migration.backup is None
    assert store.recovered_from is None
    assert list(store_path.parent.glob("*.bak")) == []


async def test_the_store_starts_in_a_missing_folder(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "new" / "folder" / "conversations.sqlite3")
    assert await store.list_conversations() == []
    await store.aclose()


async def test_a_version_1_database_is_migrated_keeping_every_message_and_a_backup(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    path = copy_v1(tmp_path)
    store = await Store.open(path, wall_clock=wall_clock)

    assert store.migration is not None
    assert (store.migration.from_version, store.migration.to_version) == (1, 2)
    backup = store.migration.backup
    assert backup == tmp_path / "conversations.sqlite3.v1.bak"
    assert query(backup, "PRAGMA user_version") == [(1,)]
    assert len(query(backup, "SELECT * FROM messages")) == len(make_v1.MESSAGES)

    kept = [
        (m.id, m.conversation_id, m.seq, m.role.value, m.text, m.status.value, m.provider_id)
        for conversation in ("lisbon", "wal", "nothing")
        for m in await store.messages(conversation)
    ]
    assert kept == [row[:7] for row in make_v1.MESSAGES]
    lisbon = await store.conversation("lisbon")
    assert lisbon is not None
    assert (lisbon.title, lisbon.chain, lisbon.tab_position, lisbon.draft) == (
        "Trip to Lisbon",
        ("local", "fallback"),
        0,
        "",
    )
    assert [tab.id for tab in await store.open_tabs()] == ["lisbon", "wal"]
    # What version 2 added works on the old rows.
    [hit] = await store.search("pastéis")
    assert hit.message_id == "l2"
    assert (await store.messages("lisbon"))[1].prompt_tokens is None
    await store.aclose()
    assert fts_in_sync(path)


async def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = copy_v1(tmp_path)
    before = columns(path, "messages")
    broken = Migration(2, "broken", (MIGRATIONS[1].statements[0], "THIS IS NOT SQL"))

    with pytest.raises(MigrationError, match=r"from version 1 to 2.*left unchanged"):
        await Store.open(path, migrations=(MIGRATIONS[0], broken))

    assert store_threads() == []
    assert query(path, "PRAGMA user_version") == [(1,)]
    assert columns(path, "messages") == before
    assert len(query(path, "SELECT * FROM messages")) == len(make_v1.MESSAGES)
    assert (tmp_path / "conversations.sqlite3.v1.bak").exists()

    store = await Store.open(path)  # the real migration still succeeds afterwards
    assert store.migration is not None
    assert store.migration.backup == tmp_path / f"{path.name}.v1.{_stamp(store)}.bak"
    await store.aclose()


def _stamp(store: Store) -> str:
    """The time stamp in the name of a second backup of the same version."""
    assert store.migration is not None and store.migration.backup is not None
    return store.migration.backup.name.split(".")[-2]


async def test_a_database_from_a_newer_version_is_refused_and_left_alone(
    store_path: Path,
) -> None:
    connection = sqlite3.connect(store_path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreError, match="newer Valis Desktop"):
        await Store.open(store_path)
    assert query(store_path, "PRAGMA user_version") == [(99,)]


async def test_a_database_that_is_not_ours_is_left_alone(store_path: Path) -> None:
    connection = sqlite3.connect(store_path)
    connection.execute("CREATE TABLE photos (id INTEGER)")
    connection.close()
    with pytest.raises(StoreError, match="not one of Valis Desktop"):
        await Store.open(store_path)
    assert query(store_path, "SELECT name FROM sqlite_master") == [("photos",)]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_an_unreadable_file_is_moved_aside_and_a_new_store_started(
    store_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    if damage == "truncated":
        store = await Store.open(store_path)
        for number in range(200):
            await store.import_json(_export_with(f"message number {number} " * 20))
        await store.aclose()
    original = _damage(store_path, damage)

    store = await Store.open(store_path)

    [moved] = store_path.parent.glob("conversations.sqlite3.corrupt-*[0-9Z]")
    assert moved.read_bytes() == original
    if damage == "garbage":
        assert moved.with_name(moved.name + "-wal").read_bytes() == b"not a wal either"
    assert store.recovered_from is not None
    assert str(moved) in store.recovered_from and "new, empty one" in store.recovered_from
    assert await store.list_conversations() == []
    await store.import_json(_export_with("a fresh start"))
    assert len(await store.list_conversations()) == 1
    await store.aclose()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    caplog.clear()


async def test_recover_settles_what_a_previous_run_left_unfinished(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    store = await Store.open(copy_v1(tmp_path), wall_clock=wall_clock)
    recovery = await store.recover()
    assert (recovery.interrupted, recovery.not_sent) == (1, 1)
    messages = await store.messages("wal")
    assert [(m.text, m.status) for m in messages] == [
        ("Explain write-ahead logging", MessageStatus.SENT),
        ("A write-ahead log appends every change to a separate file", MessageStatus.INTERRUPTED),
        ("And checkpoints?", MessageStatus.NOT_SENT),
    ]
    assert messages[1].finished_at is not None
    assert "stopped before this answer was complete" in messages[1].error
    assert "stopped before this message was sent" in messages[2].error
    again = await store.recover()
    assert (again.interrupted, again.not_sent) == (0, 0)
    await store.aclose()


async def test_a_closed_store_refuses_work(store_path: Path) -> None:
    store = await Store.open(store_path)
    await store.aclose()
    with pytest.raises(StoreClosed):
        store.list_conversations()
    await store.aclose()  # closing twice is harmless


def _damage(path: Path, how: str) -> bytes:
    """Make the file garbage (with a garbage WAL) or cut it in half; returns what is left."""
    if how == "garbage":
        content = os.urandom(20_000)
        path.with_name(path.name + "-wal").write_bytes(b"not a wal either")
    else:
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    return content


def _export_with(text: str) -> str:
    return (
        '{"format": "valis-desktop/conversation", "format_version": 1,'
        ' "conversation": {"created_at": "2024-01-01T00:00:00Z",'
        ' "updated_at": "2024-01-01T00:00:00Z"},'
        ' "messages": [{"role": "user", "text": "' + text + '", "status": "sent",'
        ' "created_at": "2024-01-01T00:00:00Z"}]}'
    )
