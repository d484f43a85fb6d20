"""The one place that decides what a provider failure means (see the outcome table in
docs/engine.md): what the breaker records and whether the request may try the next provider."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from valis_desktop.api import (
    InvalidRequestError,
    NeedsAttentionError,
    ProviderError,
    RateLimitedError,
    TransientError,
)


class Outcome(enum.Enum):
    SUCCESS = "success"
    NEUTRAL = "neutral"
    """Stopped or cancelled by the user: says nothing about the provider's health."""
    INVALID_REQUEST = "invalid request"
    NEEDS_ATTENTION = "needs attention"
    RATE_LIMITED = "rate limited"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Classified:
    outcome: Outcome
    message: str
    retry_after: float | None = None

    @property
    def may_cascade(self) -> bool:
        """Whether the next provider in the chain should be tried (if nothing was streamed)."""
        return self.outcome is not Outcome.INVALID_REQUEST


class FirstChunkTimeout(TransientError):
    pass


class StallTimeout(TransientError):
    pass


class MalformedStream(TransientError):
    pass


def classify(error: BaseException, plugin: str) -> Classified:
    """Map an exception raised while streaming from a provider to an outcome."""
    if isinstance(error, RateLimitedError):
        return Classified(Outcome.RATE_LIMITED, error.message, error.retry_after)
    if isinstance(error, NeedsAttentionError):
        return Classified(Outcome.NEEDS_ATTENTION, error.message)
    if isinstance(error, InvalidRequestError):
        return Classified(Outcome.INVALID_REQUEST, error.message)
    if isinstance(error, ProviderError):
        return Classified(Outcome.FAILURE, error.message)
    return Classified(Outcome.FAILURE, f"plugin {plugin!r} raised {type(error).__name__}: {error}")
