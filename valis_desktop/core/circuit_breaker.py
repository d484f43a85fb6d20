"""A circuit breaker per provider: stop sending work to a provider that keeps failing.

closed ──3 consecutive failures──► open (10 s × 2^(n−1), capped, with jitter)
open ──cool-down over──► half-open: exactly one probe is admitted, the rest skip
half-open ──probe succeeds──► closed (back-off reset) │ probe fails ──► open, next interval
any ──auth or billing failure──► needs attention, until ``reset()``
any ──rate limited──► open for the server's Retry-After (or the base interval)

Time comes from the injected clock; the state is computed from it on read, so nothing needs a
timer to move from open to half-open.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from valis_desktop.core.clock import Clock
from valis_desktop.core.outcomes import Outcome


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"
    NEEDS_ATTENTION = "needs attention"


class Permit(enum.Enum):
    """How a request was let through: as ordinary traffic, or as the half-open probe."""

    NORMAL = "normal"
    PROBE = "probe"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 3
    base_open_seconds: float = 10.0
    max_open_seconds: float = 300.0
    jitter: float = 0.1
    """Each open interval is stretched by a random fraction in [0, jitter)."""
    max_retry_after_seconds: float = 3600.0


class CircuitBreaker:
    def __init__(
        self,
        clock: Clock,
        config: BreakerConfig | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self.config = config or BreakerConfig()
        self._rng = rng
        self._tripped = False  # open or half-open
        self._needs_attention = False
        self._open_until = 0.0
        self._open_count = 0  # consecutive openings, for the back-off exponent
        self._consecutive_failures = 0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._needs_attention:
            return BreakerState.NEEDS_ATTENTION
        if not self._tripped:
            return BreakerState.CLOSED
        if self._clock.now() < self._open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def seconds_until_probe(self) -> float | None:
        """Seconds until an open breaker admits its probe; ``None`` when not open."""
        if self.state is not BreakerState.OPEN:
            return None
        return self._open_until - self._clock.now()

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def admit(self) -> Permit | None:
        """Let a request through, or ``None`` if the provider must be skipped."""
        if not self._tripped and not self._needs_attention:
            return Permit.NORMAL
        if self.state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return Permit.PROBE
        return None

    def still_admits(self, permit: Permit) -> bool:
        """Whether a request admitted earlier (and since waiting for a slot) may still go."""
        if permit is Permit.PROBE:
            return not self._needs_attention
        return not self._tripped and not self._needs_attention

    def record(self, permit: Permit, outcome: Outcome, retry_after: float | None = None) -> None:
        """Feed the outcome of an admitted request back into the breaker."""
        if permit is Permit.PROBE:
            self._probe_in_flight = False
        match outcome:
            case Outcome.SUCCESS:
                self._consecutive_failures = 0
                if permit is Permit.PROBE or self._tripped:
                    self._close()
            case Outcome.FAILURE:
                self._consecutive_failures += 1
                if permit is Permit.PROBE or (
                    not self._tripped
                    and self._consecutive_failures >= self.config.failure_threshold
                ):
                    self._open(self._backoff())
            case Outcome.RATE_LIMITED:
                seconds = self.config.base_open_seconds if retry_after is None else retry_after
                seconds = min(max(seconds, 0.0), self.config.max_retry_after_seconds)
                self._tripped = True
                self._open_until = max(self._open_until, self._clock.now() + seconds)
            case Outcome.NEEDS_ATTENTION:
                self._needs_attention = True
            case Outcome.NEUTRAL | Outcome.INVALID_REQUEST:
                pass

    def reset(self) -> None:
        """Forget every failure: the user fixed the settings or asked for a reset."""
        self._needs_attention = False
        self._probe_in_flight = False
        self._close()

    def _backoff(self) -> float:
        self._open_count += 1
        base = self.config.base_open_seconds * 2.0 ** (self._open_count - 1)
        stretch = 1.0 + self.config.jitter * float(self._rng())
        return min(base, self.config.max_open_seconds) * stretch

    def _open(self, seconds: float) -> None:
        self._tripped = True
        self._open_until = self._clock.now() + seconds

    def _close(self) -> None:
        self._tripped = False
        self._open_until = 0.0
        self._open_count = 0
        self._consecutive_failures = 0
