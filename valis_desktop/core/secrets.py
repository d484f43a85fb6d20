"""API keys in the operating system's keychain (``keyring``), never in a file or a log.

A secret belongs to a plugin and has a name (usually a provider instance's id); it is stored
under the service "valis-desktop" as ``<plugin>:<name>``. On a machine without a keychain (a
headless Linux box) nothing is stored: ``available()`` says so, and plugins offer an
environment variable instead.
"""

from __future__ import annotations

import contextlib
import logging

import keyring
import keyring.errors
from keyring.backends import fail

log = logging.getLogger(__name__)

SERVICE = "valis-desktop"


def _user(plugin: str, name: str) -> str:
    return f"{plugin}:{name}"


def available() -> bool:
    """Whether a keychain backend exists to keep secrets in."""
    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and backend.priority > 0


def read_secret(plugin: str, name: str) -> str | None:
    """The secret, or ``None`` when it is not set or there is no keychain."""
    try:
        return keyring.get_password(SERVICE, _user(plugin, name))
    except keyring.errors.KeyringError as error:
        log.info("no secret %s for %s: %s", name, plugin, type(error).__name__)
        return None


def store_secret(plugin: str, name: str, value: str) -> None:
    """Keep ``value`` in the keychain; raises ``keyring.errors.KeyringError`` without one."""
    keyring.set_password(SERVICE, _user(plugin, name), value)


def delete_secret(plugin: str, name: str) -> None:
    with contextlib.suppress(keyring.errors.PasswordDeleteError):  # already gone
        keyring.delete_password(SERVICE, _user(plugin, name))
