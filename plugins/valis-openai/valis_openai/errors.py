"""The one place that turns what the ``openai`` SDK raises into the application's error classes,
which decide what the circuit breaker sees and whether the chain moves on."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import openai

from valis_desktop.api import (
    AuthError,
    InvalidRequestError,
    NeedsAttentionError,
    ProviderError,
    RateLimitedError,
    TransientError,
)

_MESSAGE_LIMIT = 300


def provider_error(error: openai.OpenAIError, name: str, key: str | None) -> ProviderError:
    """The application's view of ``error`` from the endpoint called ``name``.

    ``key`` is removed from the message, should a server ever echo it back.
    """
    mapped = _map(error, name)
    message = scrub(mapped.message, key)
    if message != mapped.message:
        mapped.message = message
        mapped.args = (message,)
    return mapped


def scrub(text: str, key: str | None) -> str:
    """``text`` without ``key``."""
    return text.replace(key, "[API key]") if key else text


def _map(error: openai.OpenAIError, name: str) -> ProviderError:
    if isinstance(error, openai.APITimeoutError):
        return TransientError(f"{name} did not answer in time (the connection timed out).")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f": {cause}" if cause is not None and str(cause) else ""
        return TransientError(f"The connection to {name} failed{detail}.")
    if isinstance(error, openai.APIStatusError):
        return _from_status(error.status_code, server_message(error), error.response.headers, name)
    if isinstance(error, openai.APIError):  # an error event in the middle of a stream
        return TransientError(f"{name} failed while answering: {_shorten(error.message)}")
    return TransientError(f"{name} failed: {_shorten(str(error))}")


def _from_status(status: int, message: str, headers: Mapping[str, str], name: str) -> ProviderError:
    said = f": {message}" if message else ""
    if status == 429:
        return RateLimitedError(
            f"{name} is rate limiting requests (HTTP 429){said}", retry_after(headers)
        )
    if status in (401, 403):
        return AuthError(
            f"{name} refused the API key (HTTP {status}){said}. "
            "Check the key for this provider in Settings."
        )
    if status == 402:
        return AuthError(
            f"{name} asks for payment (HTTP 402){said}. Check the account's billing, and the "
            "key for this provider in Settings."
        )
    if status in (400, 413, 422):
        return InvalidRequestError(f"{name} rejected the request (HTTP {status}){said}")
    if status == 404:
        return NeedsAttentionError(
            f"{name} does not know this address or model (HTTP 404){said}. Check the base URL "
            "and the model name of this provider in Settings."
        )
    return TransientError(f"{name} failed (HTTP {status}){said}")


def server_message(error: openai.APIStatusError) -> str:
    """What the server said, without the SDK's decoration."""
    body = error.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return _shorten(message)
        return ""
    if isinstance(body, str):
        return _shorten(body)
    return ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
