"""The ``anthropic`` provider against a real HTTP server that misbehaves on request, driven through
the real provider manager and sessions; its settings, "test connection" and key handling."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

import pytest
from valis_anthropic import AnthropicInstance, AnthropicProvider, check_connection
from valis_anthropic.connection import CONVERSATION_START, to_anthropic_messages

from valis_desktop.api import ENTRY_POINT_GROUP, GenerationParams, Message, Persona, Role, Usage
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session

from .engine import TEST_KEY, MakeManager, answer, chunks_arrived
from .fake_llm_server import ANTHROPIC_MODEL, OPENAI_MODEL, Behaviour, FakeLLMServer

CHAIN = ["claude", "fallback"]


def settings(server: FakeLLMServer, **overrides: Any) -> AnthropicInstance:
    base = {"id": "claude", "name": "Claude", "model": ANTHROPIC_MODEL, "base_url": server.url}
    return AnthropicInstance.model_validate(base | overrides)


def claude(
    server: FakeLLMServer, key: str | None = TEST_KEY, **overrides: Any
) -> AnthropicProvider:
    return AnthropicProvider(settings(server, **overrides), key)


# Answers


async def test_an_answer_streams_with_the_system_prompt_apart_and_usage(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(chunks=("Ahoy", ", matey"), usage=(21, 4)))
    manager = make_manager(claude(llm_server))
    persona = Persona(id="pirate", name="Pirate", system_prompt="Talk like a pirate.")
    session = Session(
        manager, chain=CHAIN, persona=persona, params=GenerationParams(temperature=0.3)
    )

    first = await session.submit("Hi!")
    second = await session.submit("Again?")
    await session.aclose()

    assert first.status is Status.ANSWERED and first.provider_id == "claude"
    assert first.text == "Ahoy, matey"
    assert first.usage == Usage(prompt_tokens=21, completion_tokens=4)
    assert second.text == "Hello, world"
    request = llm_server.requests[-1]
    assert request.path == "/v1/messages"
    assert request.body["system"] == "Talk like a pirate."
    assert request.body["messages"] == [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Ahoy, matey"},
        {"role": "user", "content": "Again?"},
    ]
    assert request.body["max_tokens"] == 1024 and request.body["stream"] is True
    assert "temperature" not in request.body  # the API (2026-10-21) refuses sampling settings
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["anthropic-version"]


async def test_the_chats_length_limit_and_the_instances_model_are_sent(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    manager = make_manager(claude(llm_server, max_tokens=300))
    session = Session(manager, chain=CHAIN, model="claude-other")

    await session.submit("one")
    session.params = GenerationParams(max_tokens=5)
    await session.submit("two")
    await session.aclose()

    bodies = [r.body for r in llm_server.requests]
    assert [b["max_tokens"] for b in bodies] == [300, 5]
    assert {b["model"] for b in bodies} == {ANTHROPIC_MODEL}


def test_turns_are_merged_blank_ones_dropped_and_the_user_speaks_first() -> None:
    def m(role: Role, content: str) -> Message:
        return Message(role=role, content=content)

    system, messages = to_anthropic_messages(
        [
            m(Role.SYSTEM, "Be brief."),
            m(Role.ASSISTANT, "Welcome aboard!"),
            m(Role.USER, "a"),
            m(Role.USER, "b"),
            m(Role.ASSISTANT, "   "),
            m(Role.USER, "c"),
            m(Role.SYSTEM, "Never lie."),
        ]
    )

    assert system == "Be brief.\n\nNever lie."
    assert messages == [
        {"role": "user", "content": CONVERSATION_START},
        {"role": "assistant", "content": "Welcome aboard!"},
        {"role": "user", "content": "a\n\nb\n\nc"},
    ]


async def test_without_a_key_the_provider_needs_attention_and_sends_nothing(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    manager = make_manager(claude(llm_server, key=None))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "needs attention"
    assert "Add the key for this provider in Settings" in reply.attempts[0].message
    assert llm_server.requests == []


# Failures


async def test_429_cools_down_for_retry_after(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(status=429, message="too many", headers={"retry-after": "12"}))
    manager = make_manager(claude(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "rate limited"
    assert reply.attempts[0].message == "Claude is rate limiting requests (HTTP 429): too many"
    assert manager.breaker("claude").seconds_until_probe() == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (529, "Claude is overloaded (HTTP 529): busy"),
        (500, "Claude failed (HTTP 500): busy"),
        (503, "Claude failed (HTTP 503): busy"),
    ],
)
async def test_overload_and_server_errors_are_failures_that_move_on(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int, message: str
) -> None:
    llm_server.push(*[Behaviour(status=status, message="busy")] * 3)
    manager = make_manager(claude(llm_server))

    replies = [await answer(manager, CHAIN) for _ in range(3)]

    assert all(r.provider_id == "fallback" for r in replies)
    assert replies[0].attempts[0] == ("claude", "failure", message)
    assert manager.breaker("claude").state is BreakerState.OPEN


@pytest.mark.parametrize("status", [401, 402, 403])
async def test_auth_and_billing_failures_need_attention(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int
) -> None:
    llm_server.push(Behaviour(status=status, message="denied"))
    manager = make_manager(claude(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "needs attention"
    assert "key for this provider in Settings" in reply.attempts[0].message
    assert manager.breaker("claude").state is BreakerState.NEEDS_ATTENTION


@pytest.mark.parametrize("status", [400, 413])
async def test_an_invalid_request_stops_the_chain(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int
) -> None:
    llm_server.push(Behaviour(status=status, message="prompt is too long"))
    manager = make_manager(claude(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.FAILED and [a.provider_id for a in reply.attempts] == ["claude"]
    assert reply.error == f"Claude rejected the request (HTTP {status}): prompt is too long"
    assert manager.breaker("claude").consecutive_failures == 0


async def test_hanging_before_the_first_byte_times_out(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(hang=True))
    manager = make_manager(claude(llm_server, timeouts={"first_byte": 0.2}))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0] == ("claude", "failure", "Claude sent no answer within 0.2 s.")
    await llm_server.wait_for_disconnects(1)


async def test_an_overloaded_event_before_any_text_moves_on(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(error_event_after=0, message="Overloaded"))
    manager = make_manager(claude(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0] == ("claude", "failure", "Claude is overloaded (HTTP 529): Overloaded")


@pytest.mark.parametrize(
    ("behaviour", "outcome", "error"),
    [
        (
            Behaviour(stall_after=1),
            "failure",
            "Claude stopped sending for 0.2 s in the middle of the answer.",
        ),
        (Behaviour(close_after=1), "failure", "The connection to Claude failed"),
        (Behaviour(garbage_after=1), "failure", "Claude sent a malformed stream"),
        (Behaviour(chunks=("Hello",), finish=False), "failure", "Claude ended the answer"),
        (
            Behaviour(error_event_after=1, error_type="rate_limit_error", message="slow"),
            "rate limited",
            "Claude is rate limiting requests (HTTP 429): slow",
        ),
    ],
    ids=["stall", "close", "malformed", "unfinished", "rate-limit-event"],
)
async def test_a_failure_mid_stream_keeps_the_partial_text(
    llm_server: FakeLLMServer,
    make_manager: MakeManager,
    behaviour: Behaviour,
    outcome: str,
    error: str,
) -> None:
    llm_server.push(behaviour)
    manager = make_manager(claude(llm_server, timeouts={"read": 0.2}))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.FAILED and reply.text == "Hello"
    assert reply.provider_id == "claude" and len(reply.attempts) == 1
    assert reply.attempts[0].outcome == outcome and reply.error.startswith(error)


async def test_stop_closes_the_connection_and_keeps_the_text(
    llm_server: FakeLLMServer, make_manager: MakeManager, clock: ManualClock
) -> None:
    llm_server.push(Behaviour(stall_after=1))
    manager = make_manager(claude(llm_server))
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    session.stop()
    reply = await request
    await session.aclose()

    assert reply.status is Status.STOPPED and reply.text == "Hello"
    await llm_server.wait_for_disconnects(1)
    assert manager.breaker("claude").consecutive_failures == 0


# Test connection


async def test_the_connection_check_lists_models_and_asks_for_one_token(
    llm_server: FakeLLMServer,
) -> None:
    check = await check_connection(settings(llm_server), TEST_KEY)
    refused = await check_connection(settings(llm_server), "sk-wrong")
    keyless = await check_connection(settings(llm_server), None)

    assert check.ok and check.models == (ANTHROPIC_MODEL, OPENAI_MODEL)
    assert check.message == f"Connected: {ANTHROPIC_MODEL} answered."
    assert llm_server.requests[1].body["max_tokens"] == 1
    assert not refused.ok and refused.message.startswith("Claude refused the API key (HTTP 401)")
    assert not keyless.ok and "no API key" in keyless.message


# Settings and the key


def load(settings: dict[str, Any], keychain: dict[str, str]) -> tuple[ProviderManager, list[str]]:
    host = PluginHost(
        builtins={},
        entry_points=entry_points(group=ENTRY_POINT_GROUP, name="anthropic"),
        settings={"anthropic": settings},
        secrets=lambda plugin, name: keychain.get(name) if plugin == "anthropic" else None,
    )
    host.load()
    manager = ProviderManager()
    host.register_providers(manager)
    return manager, host.records["anthropic"].problems


def test_instances_register_and_a_bad_one_is_reported(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-the-sdks-own-variable")
    good = {"id": "claude", "model": "claude-x", "limit": 2}
    bad = {"id": "haiku", "model": "claude-y", "max_tokens": 0, "key": TEST_KEY}

    manager, problems = load({"instances": [good, bad]}, {})

    assert manager.provider_ids == ("claude",)
    provider = manager.provider("claude")
    assert isinstance(provider, AnthropicProvider)
    assert provider.display_name == "claude (claude-x)" and provider.default_concurrency == 2
    assert provider._api_key is None  # never the SDK's own environment variable
    (problem,) = problems
    assert problem.startswith("[[plugins.anthropic.instances]] number 2 (id 'haiku') was skipped")
    assert "remove 'key' and store the key in Settings" in problem
    assert TEST_KEY not in caplog.text
    caplog.clear()
    assert load({}, {})[0].provider_ids == ()


async def test_the_key_never_reaches_logs_errors_or_replies(
    llm_server: FakeLLMServer, make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoed = f"bad key {TEST_KEY}"
    llm_server.push(
        Behaviour(status=401, message=echoed),
        Behaviour(status=529, message=echoed),
        Behaviour(error_event_after=0, message=echoed),
        Behaviour(status=400, message=echoed),
    )
    manager = make_manager(claude(llm_server))

    replies = [await answer(manager, CHAIN), await answer(manager, ["fallback"])]
    manager.reset("claude")
    replies += [await answer(manager, CHAIN) for _ in range(3)]
    llm_server.push(Behaviour(status=401, message=echoed))
    check = await check_connection(settings(llm_server), TEST_KEY)

    texts = [r.error for r in replies] + [a.message for r in replies for a in r.attempts]
    texts += [check.message, repr(manager.provider("claude"))]
    assert [TEST_KEY in text for text in texts] == [False] * len(texts)
    assert "[API key]" in replies[0].attempts[0].message
    assert TEST_KEY not in caplog.text
    assert "anthropic._base_client" in {r.name for r in caplog.records}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
