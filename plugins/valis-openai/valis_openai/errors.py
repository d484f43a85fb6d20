"""The one place that turns what the ``openai`` SDK raises into the application's error classes,
which decide what the circuit breaker sees and whether the chain moves on."""

from __future__ import annotations

from collections.abc import Mapping

import openai

from valis_desktop.api import (
    ProviderError,
    TransientError,
    error_for_status,
    shorten,
)


def provider_error(error: openai.OpenAIError, name: str, key: str | None) -> ProviderError:
    """The application's view of ``error`` from the endpoint called ``name``.

    ``key`` is removed from the message, should a server ever echo it back.
    """
    return _map(error, name).redacted(key)


def _map(error: openai.OpenAIError, name: str) -> ProviderError:
    if isinstance(error, openai.APITimeoutError):
        return TransientError(f"{name} did not answer in time (the connection timed out).")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f": {cause}" if cause is not None and str(cause) else ""
        return TransientError(f"The connection to {name} failed{detail}.")
    if isinstance(error, openai.APIStatusError):
        return error_for_status(
            error.status_code, server_message(error), error.response.headers, name
        )
    if isinstance(error, openai.APIError):  # an error event in the middle of a stream
        return TransientError(f"{name} failed while answering: {shorten(error.message)}")
    return TransientError(f"{name} failed: {shorten(str(error))}")


def server_message(error: openai.APIStatusError) -> str:
    """What the server said, without the SDK's decoration."""
    body = error.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return shorten(message)
        return ""
    if isinstance(body, str):
        return shorten(body)
    return ""
