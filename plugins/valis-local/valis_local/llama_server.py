"""The engine: one llama.cpp server embedded through xllamacpp, and all that knows its formats.

Every call here blocks (loading takes about half a second, an answer seconds): call them from a
worker thread, never from the event loop.

xllamacpp always opens llama.cpp's OpenAI-compatible HTTP endpoint as well. It is bound to
127.0.0.1 on a random port and protected by a key generated for this run, so nothing else on the
machine can use it. The provider itself uses it only to count tokens (xllamacpp has no Python
call for that); answers go through ``handle_chat_completions`` in process.
"""

from __future__ import annotations

import functools
import json
import secrets
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xllamacpp  # type: ignore[import-untyped]

from valis_desktop.api import Message, Progress, StreamItem, Usage

_HOST = "127.0.0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An HTTP client that ignores proxy settings: the key must never leave this machine."""
_HTTP_TIMEOUT = 30.0
_TOKEN_COUNT_CACHE = 4096
_PROMPT_CACHE_MIB = 256
"""Host memory for saved prompt states (llama.cpp's default allows 8 GiB), so that a chat
resumed after another tab's answer need not be read again from the start."""


class EngineError(Exception):
    """The engine failed or returned an error."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        """llama.cpp's error type, e.g. ``exceed_context_size_error``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the embedded OpenAI-compatible server listens and the key it requires."""

    url: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    context_tokens: int
    batch_tokens: int
    """Tokens of the prompt read per step. The engine reports progress, and so can be stopped,
    only between steps: small steps keep a stop prompt even while a long prompt is read."""
    threads: int
    """Threads that generate the answer."""
    batch_threads: int
    """Threads that read the prompt."""


class LlamaServer:
    """A loaded model. Construct it on a worker thread: loading blocks."""

    def __init__(self, model: Path, settings: EngineSettings) -> None:
        self.settings = settings
        api_key = secrets.token_urlsafe(32)
        params = xllamacpp.CommonParams()
        params.model.path = str(model)
        params.n_ctx = settings.context_tokens
        params.n_batch = settings.batch_tokens
        params.n_ubatch = settings.batch_tokens
        params.cpuparams.n_threads = settings.threads
        params.cpuparams_batch.n_threads = settings.batch_threads
        params.n_parallel = 1
        params.hostnames = [_HOST]
        params.port = 0
        params.api_keys = [api_key]
        params.ui = False
        params.cache_ram_mib = _PROMPT_CACHE_MIB
        params.verbosity = 0  # llama.cpp writes to stderr, not to our logs: keep it quiet
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as error:
            raise EngineError(str(error)) from error
        self.endpoint = Endpoint(self._server.listening_address, api_key)
        # No reference back to self, so that a failure below frees the model at once.
        self._count = functools.lru_cache(maxsize=_TOKEN_COUNT_CACHE)(
            functools.partial(_count_tokens, self.endpoint)
        )
        one = _template_tokens(self.endpoint, ({"role": "user", "content": ""},))
        two = _template_tokens(self.endpoint, ({"role": "user", "content": ""},) * 2)
        self.framing_tokens = two - one
        """What the chat template adds around each message."""
        self.base_tokens = one - self.framing_tokens
        """What the template adds once (the generation prompt, a default system prompt)."""

    def message_tokens(self, message: Message) -> int:
        """A message's size in the prompt: its text, the template's framing, and one token of
        margin for merges where text meets framing."""
        return self._count(message.content) + self.framing_tokens + 1

    def chat(self, body: Mapping[str, Any], emit: Callable[[StreamItem], bool]) -> None:
        """Stream an answer to a chat completions ``body``, handing each item to ``emit``;
        generation stops at once when ``emit`` returns ``False``."""
        errors: list[EngineError] = []
        finished = stopped = False

        def on_chunk(chunk: dict[str, Any]) -> bool:
            nonlocal finished, stopped
            # xllamacpp swallows a callback's exception and cancels: keep ours.
            try:
                choices = chunk.get("choices") or ()
                finished = finished or bool(choices and choices[0].get("finish_reason"))
                item = self._translate(chunk)
                stopped = item is not None and not emit(item)
            except Exception as error:
                errors.append(error if isinstance(error, EngineError) else EngineError(repr(error)))
                return True
            return stopped

        request = {
            **body,
            "stream": True,
            "return_progress": True,
            "stream_options": {"include_usage": True},
        }
        try:
            self._server.handle_chat_completions(request, on_chunk)
        except Exception as error:  # a request the engine rejects before it starts
            raise EngineError(str(error)) from error
        if errors:
            raise errors[0]
        if not finished and not stopped:
            # xllamacpp also ends a stream silently when it cannot parse the engine's output
            raise EngineError("the engine ended the answer before finishing it")

    def close(self) -> None:
        """Unload the model; the engine's own threads are joined before this returns."""
        self._server = None

    def _translate(self, chunk: Mapping[str, Any]) -> StreamItem | None:
        error = chunk.get("error")
        if error is not None:
            if isinstance(error, Mapping):
                raise EngineError(str(error.get("message", error)), str(error.get("type", "")))
            raise EngineError(str(error))
        usage = chunk.get("usage")
        if usage:
            return Usage(
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
            )
        progress = chunk.get("prompt_progress")
        if progress:
            return self._reading(progress)
        choices = chunk.get("choices") or ()
        content = choices[0].get("delta", {}).get("content") if choices else None
        return content or None

    def _reading(self, progress: Mapping[str, int]) -> Progress | None:
        """A note while a long prompt is read (short ones take a blink: no note)."""
        total, cached = progress.get("total", 0), progress.get("cache", 0)
        done = progress.get("processed", 0) - cached
        to_read = total - cached
        if to_read <= self.settings.batch_tokens or done >= to_read:
            return None
        return Progress(message=f"reading the conversation… {100 * done // to_read} %")


def _count_tokens(endpoint: Endpoint, text: str) -> int:
    if not text:
        return 0
    return len(_post(endpoint, "/tokenize", {"content": text})["tokens"])


def _template_tokens(endpoint: Endpoint, messages: Sequence[Mapping[str, str]]) -> int:
    """The size of a conversation rendered by the model's chat template."""
    prompt = _post(endpoint, "/apply-template", {"messages": list(messages)})["prompt"]
    return _count_tokens(endpoint, prompt)


def _post(endpoint: Endpoint, path: str, body: Mapping[str, Any]) -> Any:
    request = urllib.request.Request(
        endpoint.url + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {endpoint.api_key}",
            "Content-Type": "application/json",
        },
    )
    try:
        with _NO_PROXY.open(request, timeout=_HTTP_TIMEOUT) as response:
            return json.load(response)
    except (OSError, ValueError) as error:
        raise EngineError(f"the model's {path} endpoint failed: {error}") from error
