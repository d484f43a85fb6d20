"""The provider manager: bounds concurrency, walks fallback chains, trips circuit breakers and
keeps the live record of providers and requests that the status panel shows."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from valis_desktop.api import (
    ChatRequest,
    Progress,
    Provider,
    ProviderError,
    Usage,
)
from valis_desktop.core.circuit_breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    Permit,
)
from valis_desktop.core.clock import Clock, Deadlines, MonotonicClock
from valis_desktop.core.outcomes import (
    Classified,
    FirstChunkTimeout,
    MalformedStream,
    Outcome,
    StallTimeout,
    classify,
)
from valis_desktop.core.request import Attempt, Phase, Request, Status
from valis_desktop.core.slots import Slots

log = logging.getLogger(__name__)

_LATENCY_SAMPLES = 256


@dataclass(frozen=True, slots=True)
class EngineConfig:
    global_limit: int = 10
    first_chunk_timeout: float = 60.0
    gap_timeout: float = 60.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


class EngineEventKind(enum.Enum):
    PROVIDER = "provider"
    """A provider's state, slots or statistics changed; ``key`` is its id."""
    REQUEST = "request"
    """A request was submitted, changed phase or provider, or ended; ``key`` is its id."""


@dataclass(frozen=True, slots=True)
class EngineEvent:
    kind: EngineEventKind
    key: str


EngineListener = Callable[[EngineEvent], None]

RequestBuilder = Callable[[Provider], ChatRequest]
"""Builds the request one provider of a chain is asked (see ``ProviderManager.run``)."""


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    id: str
    display_name: str
    description: str
    plugin: str
    state: BreakerState
    seconds_until_probe: float | None
    in_flight: int
    limit: int
    waiting: int
    successes: int
    failures: int
    consecutive_failures: int
    last_error: str
    first_chunk_p50: float | None
    first_chunk_p95: float | None
    total_p50: float | None
    total_p95: float | None


@dataclass(frozen=True, slots=True)
class RequestStatus:
    request_id: str
    session_id: str
    prompt: str
    provider_id: str | None
    phase: Phase
    elapsed: float
    first_chunk_seconds: float | None
    chars: int
    progress: str = ""
    """The provider's latest progress note before text arrives ("loading model…")."""


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    global_limit: int
    global_in_use: int
    providers: tuple[ProviderStatus, ...]
    requests: tuple[RequestStatus, ...]


class _Entry:
    """A registered provider with its slots, breaker and statistics."""

    __slots__ = (
        "breaker",
        "failures",
        "first_chunk_latency",
        "last_error",
        "plugin",
        "provider",
        "slots",
        "successes",
        "total_latency",
    )

    def __init__(self, provider: Provider, plugin: str, limit: int, breaker: CircuitBreaker):
        self.provider = provider
        self.plugin = plugin
        self.slots = Slots(limit)
        self.breaker = breaker
        self.successes = 0
        self.failures = 0
        self.last_error = ""
        self.first_chunk_latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.total_latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)


PluginFaultHandler = Callable[[str, str, BaseException], None]
"""``handler(plugin, provider_id, error)``."""


class ProviderManager:
    """Runs requests along their chains of providers.

    Order of admission for one provider of a chain: the breaker (skip if open or needing
    attention), then a slot of the provider, then a global slot. Waiting for the provider's own
    slot never holds a global one, so a busy provider cannot starve the others.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.clock: Clock = clock or MonotonicClock()
        self._deadlines = Deadlines(self.clock)
        self._rng = rng
        self._global = Slots(self.config.global_limit)
        self._providers: dict[str, _Entry] = {}
        self._requests: dict[str, Request] = {}
        self._listeners: list[EngineListener] = []
        self._retired: list[_Entry] = []
        """Removed providers still answering: closed once their last answer ends."""
        self._closing: set[asyncio.Task[None]] = set()
        self.on_plugin_fault: PluginFaultHandler | None = None
        """Told when a provider raised something no provider should (a bug in its plugin,
        not an error of the API nor a failed connection), after the attempt ended."""

    # Providers

    def add_provider(self, provider: Provider, plugin: str, limit: int | None = None) -> None:
        if provider.id in self._providers:
            raise ValueError(f"a provider with id {provider.id!r} is already registered")
        breaker = (
            CircuitBreaker(self.clock, self.config.breaker, self._rng)
            if self._rng
            else CircuitBreaker(self.clock, self.config.breaker)
        )
        self._providers[provider.id] = _Entry(
            provider, plugin, limit or provider.default_concurrency, breaker
        )
        self._provider_changed(provider.id)

    def remove_provider(self, provider_id: str) -> None:
        """Take a provider out: new requests no longer reach it (a chain naming it skips it as
        not installed); answers it is giving finish, then it is closed."""
        entry = self._providers.pop(provider_id)
        self._retired.append(entry)
        self._provider_changed(provider_id)
        self._close_idle_retired()

    @property
    def provider_ids(self) -> tuple[str, ...]:
        return tuple(self._providers)

    def provider(self, provider_id: str) -> Provider:
        return self._providers[provider_id].provider

    def breaker(self, provider_id: str) -> CircuitBreaker:
        return self._providers[provider_id].breaker

    def set_limit(self, provider_id: str, limit: int) -> None:
        self._providers[provider_id].slots.set_limit(limit)
        self._provider_changed(provider_id)

    def set_global_limit(self, limit: int) -> None:
        self._global.set_limit(limit)

    def reconfigure(self, config: EngineConfig, limits: Mapping[str, int]) -> None:
        """Apply new settings while running: limits at once (a provider absent from
        ``limits`` gets its own default), timeouts and breaker parameters from the next request.
        Breakers keep their state, and the parameters settings do not carry (jitter)."""
        config = replace(
            config,
            breaker=replace(
                config.breaker,
                jitter=self.config.breaker.jitter,
                max_retry_after_seconds=self.config.breaker.max_retry_after_seconds,
            ),
        )
        self.config = config
        self._global.set_limit(config.global_limit)
        for provider_id, entry in self._providers.items():
            entry.breaker.config = config.breaker
            entry.slots.set_limit(limits.get(provider_id, entry.provider.default_concurrency))
            self._provider_changed(provider_id)

    def reset(self, provider_id: str) -> None:
        """Close the provider's breaker: the user fixed its settings or wants to try again."""
        self._providers[provider_id].breaker.reset()
        self._provider_changed(provider_id)

    async def aclose(self) -> None:
        """Close every provider; one failing to close does not keep the others open."""
        for entry in [*self._providers.values(), *self._retired]:
            await _close(entry)
        self._retired.clear()
        if self._closing:
            await asyncio.wait(set(self._closing))

    def _close_idle_retired(self) -> None:
        for entry in [e for e in self._retired if not e.slots.in_use and not e.slots.waiting]:
            self._retired.remove(entry)
            task = asyncio.ensure_future(_close(entry))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # Observation

    def subscribe(self, listener: EngineListener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns a function that unsubscribes it.

        Listeners run synchronously on the event loop and must be cheap (a UI coalesces them
        into one refresh per frame). Characters streamed raise no event; read them from
        ``snapshot()``.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def snapshot(self) -> EngineSnapshot:
        now = self.clock.now()
        return EngineSnapshot(
            global_limit=self._global.limit,
            global_in_use=self._global.in_use,
            providers=tuple(self._provider_status(entry) for entry in self._providers.values()),
            requests=tuple(_request_status(request, now) for request in self._requests.values()),
        )

    def _provider_status(self, entry: _Entry) -> ProviderStatus:
        breaker = entry.breaker
        first = sorted(entry.first_chunk_latency)
        total = sorted(entry.total_latency)
        return ProviderStatus(
            id=entry.provider.id,
            display_name=entry.provider.display_name,
            description=entry.provider.description,
            plugin=entry.plugin,
            state=breaker.state,
            seconds_until_probe=breaker.seconds_until_probe(),
            in_flight=entry.slots.in_use,
            limit=entry.slots.limit,
            waiting=entry.slots.waiting,
            successes=entry.successes,
            failures=entry.failures,
            consecutive_failures=breaker.consecutive_failures,
            last_error=entry.last_error,
            first_chunk_p50=_percentile(first, 0.50),
            first_chunk_p95=_percentile(first, 0.95),
            total_p50=_percentile(total, 0.50),
            total_p95=_percentile(total, 0.95),
        )

    def _emit(self, kind: EngineEventKind, key: str) -> None:
        if self._listeners:
            event = EngineEvent(kind, key)
            for listener in tuple(self._listeners):
                listener(event)

    def _provider_changed(self, provider_id: str) -> None:
        self._emit(EngineEventKind.PROVIDER, provider_id)

    def _request_changed(self, request: Request) -> None:
        self._emit(EngineEventKind.REQUEST, request.id)

    # Requests (called by sessions)

    def track(self, request: Request) -> None:
        self._requests[request.id] = request
        self._request_changed(request)

    def untrack(self, request: Request) -> None:
        del self._requests[request.id]
        self._request_changed(request)

    async def run(
        self, request: Request, build: RequestBuilder, chain: Sequence[str]
    ) -> tuple[Status, str]:
        """Answer ``request`` along ``chain``; returns its final status and error message.

        ``build(provider)`` makes what each provider of the chain is asked: the context is
        fitted to that provider's budget, so a fallback with a larger context sees more of the
        conversation.

        Chunks, the provider, usage and attempts are written into ``request`` as they happen.
        Cancellation (the user's stop) propagates after the provider stream is closed, slots
        are freed and the breaker is told the outcome was neutral.
        """
        reasons: list[str] = []
        for provider_id in chain:
            entry = self._providers.get(provider_id)
            if entry is None:
                reasons.append(self._skip(request, provider_id, "not installed"))
                continue
            permit = entry.breaker.admit()
            if permit is None:
                reasons.append(self._skip(request, provider_id, entry.breaker.state))
                continue
            result = await self._attempt(entry, permit, request, build(entry.provider))
            if result is None:
                return Status.ANSWERED, ""
            reasons.append(f"{provider_id}: {result.message}")
            if request.chunks or not result.may_cascade:
                return Status.FAILED, result.message
        if not chain:
            return Status.FAILED, "The provider chain is empty: add a provider to this chat."
        return Status.FAILED, "No provider could answer. " + "; ".join(reasons)

    def _skip(self, request: Request, provider_id: str, why: str) -> str:
        request.attempts.append(Attempt(provider_id, "skipped", why))
        return f"{provider_id}: skipped ({why})"

    async def _attempt(
        self, entry: _Entry, permit: Permit, request: Request, chat_request: ChatRequest
    ) -> Classified | None:
        """One provider's try. ``None`` means answered; otherwise why it failed."""
        provider_id = entry.provider.id
        request._set_phase(Phase.WAITING, provider_id)
        self._request_changed(request)
        outcome = Outcome.NEUTRAL
        retry_after: float | None = None
        try:
            if not entry.slots.try_acquire():
                await entry.slots.acquire()
            try:
                if not self._global.try_acquire():
                    await self._global.acquire()
                try:
                    if not entry.breaker.still_admits(permit):
                        request.attempts.append(
                            Attempt(provider_id, "skipped", "breaker opened while waiting")
                        )
                        return Classified(Outcome.NEUTRAL, "breaker opened while waiting")
                    self._provider_changed(provider_id)
                    result = await self._stream(entry, request, chat_request)
                finally:
                    self._global.release()
            finally:
                entry.slots.release()
                if self._retired:
                    self._close_idle_retired()
            if result is None:
                outcome = Outcome.SUCCESS
            else:
                outcome, retry_after = result.outcome, result.retry_after
            return result
        finally:
            entry.breaker.record(permit, outcome, retry_after)
            self._provider_changed(provider_id)

    async def _stream(
        self, entry: _Entry, request: Request, chat_request: ChatRequest
    ) -> Classified | None:
        provider_id = entry.provider.id
        clock = self.clock
        config = self.config
        request._set_phase(Phase.STREAMING, provider_id)
        self._request_changed(request)
        started = clock.now()
        first_chunk_at: float | None = None
        deadline = self._deadlines.deadline(config.first_chunk_timeout)
        result: Classified | None = None
        try:
            stream = entry.provider.stream(chat_request)
            try:
                with deadline:
                    async for item in stream:
                        if type(item) is str:
                            if not item:
                                continue
                            if first_chunk_at is None:
                                first_chunk_at = now = clock.now()
                                entry.first_chunk_latency.append(now - started)
                                request._add_chunk(item, now)
                                self._request_changed(request)
                            else:
                                request._add_chunk(item, first_chunk_at)
                            deadline.extend(config.gap_timeout)
                        elif isinstance(item, Usage):
                            request.usage = item
                        elif isinstance(item, Progress):
                            if first_chunk_at is None:
                                request._set_progress(item.message)
                                self._request_changed(request)
                                deadline.extend(config.first_chunk_timeout)
                        else:
                            raise MalformedStream(
                                f"{provider_id} sent a {type(item).__name__} instead of text"
                            )
            except BaseException:
                # Close the provider's stream (a finished one is closed already), so that it
                # releases what it holds: a connection, a process, a generation in progress.
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
                raise
        except TimeoutError as error:
            if not deadline.expired():
                result = classify(error, entry.plugin)
            elif first_chunk_at is None:
                result = classify(
                    FirstChunkTimeout(f"no answer within {config.first_chunk_timeout:g} s"),
                    entry.plugin,
                )
            else:
                result = classify(
                    StallTimeout(f"the answer stalled for {config.gap_timeout:g} s"),
                    entry.plugin,
                )
        except asyncio.CancelledError:
            request.attempts.append(Attempt(provider_id, "stopped"))
            raise
        except ProviderError as error:
            result = classify(error, entry.plugin)
            log.info("provider %r: %s: %s", provider_id, result.outcome.value, result.message)
        except Exception as error:
            result = classify(error, entry.plugin)
            log.warning("plugin %r: provider %r raised", entry.plugin, provider_id, exc_info=error)
            if self.on_plugin_fault is not None and not isinstance(error, OSError):
                # After this attempt has let go of its slots and told its breaker.
                asyncio.get_running_loop().call_soon(
                    self.on_plugin_fault, entry.plugin, provider_id, error
                )
        end = clock.now()
        if result is None:
            entry.successes += 1
            entry.total_latency.append(end - started)
            request.attempts.append(Attempt(provider_id, "answered"))
        else:
            if result.outcome is not Outcome.INVALID_REQUEST:
                entry.failures += 1
            entry.last_error = result.message
            request.attempts.append(Attempt(provider_id, result.outcome.value, result.message))
        return result


async def _close(entry: _Entry) -> None:
    try:
        await entry.provider.aclose()
    except Exception:
        log.exception("plugin %r: provider %r failed to close", entry.plugin, entry.provider.id)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _request_status(request: Request, now: float) -> RequestStatus:
    started = request.started_at
    return RequestStatus(
        request_id=request.id,
        session_id=request.session_id,
        prompt=request.prompt,
        provider_id=request.provider_id,
        phase=request.phase,
        progress=request.progress,
        elapsed=now - (started if started is not None else request.submitted_at),
        first_chunk_seconds=(
            None
            if started is None or request.first_chunk_at is None
            else request.first_chunk_at - started
        ),
        chars=request.chars,
    )
