"""The errors the conversation store raises on purpose; each message is meant for the user."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked; the message says what happened and what to do."""


class MigrationError(StoreError):
    """Upgrading the database failed; it was left as it was."""


class ImportFailed(StoreError):
    """A file to import is not a valid conversation export; nothing was imported."""


class StoreClosed(StoreError):
    """The store was closed; it takes no more work."""
