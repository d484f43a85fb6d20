"""The conversation store: every conversation on disk, safe from crashes, searchable, exportable.

``Store`` is the database (one SQLite file, one worker thread); ``Recorder`` follows sessions
and writes what happens in them. See docs/storage.md.
"""

from valis_desktop.core.store.database import FILE_NAME, THREAD_NAME, default_path
from valis_desktop.core.store.errors import ImportFailed, MigrationError, StoreClosed, StoreError
from valis_desktop.core.store.export import FORMAT, FORMAT_VERSION
from valis_desktop.core.store.recorder import DEFAULT_INTERVAL, Recorder
from valis_desktop.core.store.records import (
    Conversation,
    ConversationSummary,
    MessageStatus,
    Recovery,
    SearchHit,
    StoredMessage,
    history_from,
)
from valis_desktop.core.store.schema import SCHEMA_VERSION, MigrationReport
from valis_desktop.core.store.store import UNSET, Store

__all__ = [
    "DEFAULT_INTERVAL",
    "FILE_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "SCHEMA_VERSION",
    "THREAD_NAME",
    "UNSET",
    "Conversation",
    "ConversationSummary",
    "ImportFailed",
    "MessageStatus",
    "MigrationError",
    "MigrationReport",
    "Recorder",
    "Recovery",
    "SearchHit",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoredMessage",
    "default_path",
    "history_from",
]
