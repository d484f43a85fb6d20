"""The one place that turns what the ``anthropic`` SDK raises into the application's error
classes, which decide what the circuit breaker sees and whether the chain moves on."""

from __future__ import annotations

from collections.abc import Mapping

import anthropic

from valis_desktop.api import (
    ProviderError,
    TransientError,
    error_for_status,
    shorten,
)

# An error event in the middle of a stream comes with a 200 status: its type says what it is.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def provider_error(error: anthropic.AnthropicError, name: str, key: str | None) -> ProviderError:
    """The application's view of ``error`` from the endpoint called ``name``.

    ``key`` is removed from the message, should a server ever echo it back.
    """
    return _map(error, name).redacted(key)


def _map(error: anthropic.AnthropicError, name: str) -> ProviderError:
    if isinstance(error, anthropic.APITimeoutError):
        return TransientError(f"{name} did not answer in time (the connection timed out).")
    if isinstance(error, anthropic.APIConnectionError):
        cause = error.__cause__
        detail = f": {cause}" if cause is not None and str(cause) else ""
        return TransientError(f"The connection to {name} failed{detail}.")
    if isinstance(error, anthropic.APIStatusError):
        kind, message = _error_of(error.body)
        status = error.status_code
        if status < 400:
            if kind not in _STATUS_OF_TYPE:
                return TransientError(f"{name} failed while answering: {message or kind}")
            status = _STATUS_OF_TYPE[kind]
        if status == 529:
            said = f": {message}" if message else ""
            return TransientError(f"{name} is overloaded (HTTP 529){said}")
        return error_for_status(status, message, error.response.headers, name)
    return TransientError(f"{name} failed: {shorten(str(error))}")


def _error_of(body: object) -> tuple[str, str]:
    """The error's type and what the server said, from ``{"error": {"type", "message"}}``."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            kind, message = inner.get("type"), inner.get("message")
            return (
                kind if isinstance(kind, str) else "",
                shorten(message) if isinstance(message, str) else "",
            )
    if isinstance(body, str):
        return "", shorten(body)
    return "", ""
