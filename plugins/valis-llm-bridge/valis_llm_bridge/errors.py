"""What llm and its plugins raise, as the application's error classes.

llm's plugins talk to their services through SDKs this plugin does not know, so HTTP failures
are recognised by shape: an exception with a ``status_code`` (the openai and anthropic SDKs),
or with a ``response`` that has one (httpx). llm's own ``NeedsKeyException`` means the user has
to store a key with ``llm keys set``. Anything else is a transient failure: the chain moves on.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from pydantic import ValidationError

from valis_desktop.api import (
    AuthError,
    InvalidRequestError,
    NeedsAttentionError,
    ProviderError,
    TransientError,
    describe_invalid,
    error_for_status,
    shorten,
)


def said(error: BaseException) -> str:
    """The error's message, or its class's name when it has none."""
    message = getattr(error, "message", None)
    if not isinstance(message, str) or not message.strip():
        message = str(error)
    return shorten(message) or type(error).__name__


def request_error(error: Exception, name: str, key_name: str | None) -> ProviderError:
    """The error for a request llm refused to build (before asking the model anything)."""
    if isinstance(error, ValidationError):  # an option out of the model's range
        return InvalidRequestError(
            f"{name} cannot take this request: its option {describe_invalid(error)}"
        )
    if isinstance(error, ValueError):  # llm's checks: conversations, attachments, and the like
        return InvalidRequestError(f"{name} cannot take this request: {said(error)}")
    return stream_error(error, name, key_name)


def stream_error(error: Exception, name: str, key_name: str | None) -> ProviderError:
    """The error for what the model raised; ``key_name`` is the name llm stores its key under."""
    if isinstance(error, ProviderError):
        return error
    llm = sys.modules.get("llm")
    if llm is not None and isinstance(error, llm.NeedsKeyException):
        return AuthError(
            f"{name} needs an API key that llm does not have: {said(error).rstrip('.')}. "
            "Then reset this provider."
        )
    status = _status(error)
    if status is not None:
        return _for_status(error, status, name, key_name)
    if isinstance(error, TimeoutError):
        return TransientError(f"{name} did not answer in time.")
    return TransientError(f"{name} failed: {said(error)}")


def _status(error: Exception) -> int | None:
    for holder in (error, getattr(error, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return status
    return None


def _headers(error: Exception) -> dict[str, str]:
    headers = getattr(getattr(error, "response", None), "headers", None)
    if not isinstance(headers, Mapping):
        return {}
    return {str(key).lower(): str(value) for key, value in headers.items()}


def _for_status(error: Exception, status: int, name: str, key_name: str | None) -> ProviderError:
    message = said(error)
    keys = f"llm keys set {key_name}" if key_name else "llm keys set"
    if status in (401, 403):
        return AuthError(
            f"{name} was refused its API key (HTTP {status}): {message}. Check the key llm "
            f"uses ({keys}), then reset this provider."
        )
    if status == 402:
        return AuthError(
            f"{name} asks for payment (HTTP 402): {message}. Check the account's billing and "
            f"the key llm uses ({keys}), then reset this provider."
        )
    if status == 404:
        return NeedsAttentionError(
            f"{name} is not known to its service (HTTP 404): {message}. Check the model's "
            "settings in llm (llm models list), then reset this provider."
        )
    return error_for_status(status, message, _headers(error), name)
