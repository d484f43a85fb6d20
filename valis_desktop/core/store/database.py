"""The database file and the one thread that touches it.

Every piece of database work is a job: a function of the connection, run in its own transaction
on a single worker thread, strictly in the order the jobs were submitted. The event loop only
queues jobs and receives their results, so it never waits on the disk. A job that nobody awaits
(a checkpoint, a draft saved while typing) still runs in order; if it fails it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from valis_desktop.core.store.errors import StoreClosed, StoreError
from valis_desktop.core.store.schema import MIGRATIONS, Migration, MigrationReport, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

THREAD_NAME = "valis-store"
FILE_NAME = "conversations.sqlite3"
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_BUSY_TIMEOUT_MS = 5000


def default_path() -> Path:
    """``conversations.sqlite3`` in the platform's data directory for Valis Desktop."""
    return Path(platformdirs.user_data_dir("valis-desktop", appauthor=False)) / FILE_NAME


@dataclass(frozen=True, slots=True)
class Opened:
    """What happened while opening the database file."""

    migration: MigrationReport | None
    recovered_from: str | None
    """Set when the file was unreadable and was moved aside: a message for the user."""


def open_connection(
    path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[sqlite3.Connection, Opened]:
    """Open (or create) the database at ``path``, verified and migrated.

    A file SQLite cannot read, or one that fails its quick check, is moved aside with its WAL
    and shared-memory files (``<name>.corrupt-<UTC time>``; never deleted) and a new database
    is started. Other failures (a newer schema, a failed migration, a locked or inaccessible
    file) raise ``StoreError`` and leave the file alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    damage = _damage(path)
    recovered_from = None if damage is None else _move_aside(path, damage)
    connection = _connect(path)
    try:
        report = migrate(connection, path, migrations)
    except BaseException:
        connection.close()
        raise
    return connection, Opened(report, recovered_from)


def _damage(path: Path) -> str | None:
    """Why the file at ``path`` is unreadable, or ``None`` (also when there is none yet).

    Checked on a read-only connection: closing a writable one would delete a WAL file that
    belongs with the damaged database and must be moved aside with it.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # not a question of damage: opening it for real says what is wrong
    try:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as error:
        return str(error) if error.sqlite_errorcode & 0xFF in _CORRUPT_CODES else None
    finally:
        connection.close()
    return None if problems == ["ok"] else "; ".join(problems)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # Autocommit at the driver level: each job opens and ends its own transaction.
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise _cannot_open(path, error) from error
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS:d}")
        connection.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit is an append to the WAL, synced to disk at checkpoints only.
        # Nothing committed is lost when the app crashes or is killed, and the file is never
        # corrupted; a power cut may lose the last commits. A user's message is committed with
        # FULL (see ``Database.submit``), so what the user typed survives even that.
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as error:
        connection.close()
        raise _cannot_open(path, error) from error
    return connection


def _cannot_open(path: Path, error: sqlite3.Error) -> StoreError:
    return StoreError(
        f"Cannot open the conversation database {path}: {error}. Check that the file is "
        "readable and not in use by another program, then start again; it was left as it was."
    )


def _move_aside(path: Path, reason: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(target.with_name(target.name + suffix))
    message = (
        f"The conversation database could not be read ({reason}). It was moved to {target} "
        "and a new, empty one was started; your earlier conversations are in that file."
    )
    log.warning("%s", message)
    return message


class Database:
    """One SQLite connection on one worker thread; jobs run one at a time, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[Job[Any], asyncio.Future[Any], bool, bool] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed: asyncio.Future[None] = loop.create_future()
        self._closing = False

    @classmethod
    async def start(cls, opener: Callable[[], tuple[sqlite3.Connection, T]]) -> tuple[Database, T]:
        """Start the worker thread, open the connection there with ``opener`` and return the
        database with what the opener reported. If ``opener`` raises, no thread is left."""
        loop = asyncio.get_running_loop()
        database = cls(loop)
        opened: asyncio.Future[T] = loop.create_future()
        database._thread = threading.Thread(
            target=database._run, args=(opener, opened), name=THREAD_NAME, daemon=True
        )
        database._thread.start()
        try:
            return database, await opened
        except BaseException:
            database._closing = True
            database._jobs.put(None)  # if it opened after all (we were cancelled), it ends
            await asyncio.shield(database._closed)
            database._thread.join()
            raise

    def submit(
        self, job: Job[T], *, write: bool = True, durable: bool = False
    ) -> asyncio.Future[T]:
        """Queue ``job`` behind every job submitted before it and return its future result.

        ``write`` takes the write lock at once (``BEGIN IMMEDIATE``); ``durable`` syncs the
        commit to disk (``synchronous = FULL``) before the result is delivered. Cancelling the
        future does not cancel the job. An unexpected failure is logged here, so a job that
        nobody awaits never fails silently; ``StoreError`` is for the caller alone.
        """
        if self._closing:
            raise StoreClosed("The conversation store is closed.")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((job, future, write, durable))
        return future

    async def aclose(self) -> None:
        """Run every job already submitted, close the connection and end the thread."""
        if not self._closing:
            self._closing = True
            self._jobs.put(None)
        await asyncio.shield(self._closed)
        if self._thread is not None:
            self._thread.join()  # it has closed the connection and is returning: no wait

    def _run(self, opener: Callable[[], tuple[sqlite3.Connection, Any]], opened: Any) -> None:
        try:
            connection, report = opener()
        except BaseException as error:
            self._deliver(opened, None, error)
            self._deliver(self._closed, None, None)
            return
        self._deliver(opened, report, None)
        try:
            while (item := self._jobs.get()) is not None:
                job, future, write, durable = item
                try:
                    result = _transact(connection, job, write, durable)
                except Exception as error:
                    if not isinstance(error, StoreError):
                        name = getattr(getattr(job, "func", job), "__name__", "?")
                        log.error("conversation store: %s failed", name, exc_info=error)
                    self._deliver(future, None, error)
                else:
                    self._deliver(future, result, None)
        finally:
            connection.close()
            self._deliver(self._closed, None, None)

    def _deliver(
        self, future: asyncio.Future[Any], result: object, error: BaseException | None
    ) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to receive it
            self._loop.call_soon_threadsafe(_settle, future, result, error)


def _transact(connection: sqlite3.Connection, job: Job[T], write: bool, durable: bool) -> T:
    if durable:
        connection.execute("PRAGMA synchronous = FULL")
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = job(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        if durable:
            connection.execute("PRAGMA synchronous = NORMAL")
    return result


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():
        return  # the caller stopped waiting
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
        # Logged already (or a StoreError meant for an awaiting caller): spare asyncio's
        # "exception was never retrieved" for futures of fire-and-forget writes.
        future.exception()
