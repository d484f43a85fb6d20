"""The ``openai`` provider against a real HTTP server that misbehaves on request, driven through
the real provider manager and sessions: each failure must land in the right outcome class, do
the right thing to the breaker, and move the chain on (or not) as the outcome table says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from valis_openai import OpenAIInstance, OpenAIProvider

from valis_desktop.api import GenerationParams, Persona, Usage
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session

from .engine import TEST_KEY, MakeManager, answer, chunks_arrived
from .fake_llm_server import OPENAI_MODEL, Behaviour, FakeLLMServer

CHAIN = ["remote", "fallback"]


def remote(server: FakeLLMServer, key: str | None = TEST_KEY, **settings: Any) -> OpenAIProvider:
    instance = OpenAIInstance.model_validate(
        {"id": "remote", "name": "Remote", "model": OPENAI_MODEL, "base_url": server.url + "/v1"}
        | settings
    )
    return OpenAIProvider(instance, key)


# Answers


async def test_an_answer_streams_in_chunks_with_usage(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(chunks=("Hel", "lo", " there"), usage=(11, 3)))
    manager = make_manager(remote(llm_server))
    persona = Persona(id="pirate", name="Pirate", system_prompt="Talk like a pirate.")
    session = Session(
        manager, chain=CHAIN, persona=persona, params=GenerationParams(temperature=0.0)
    )
    chunks: list[str] = []
    session.subscribe(lambda event: chunks.append(event.chunk) if event.chunk else None)

    first = await session.submit("Hi!")
    second = await session.submit("And again?")
    await session.aclose()

    assert first.status is Status.ANSWERED and first.provider_id == "remote"
    assert first.text == "Hello there" and chunks[:3] == ["Hel", "lo", " there"]
    assert first.usage == Usage(prompt_tokens=11, completion_tokens=3)
    assert second.text == "Hello, world"  # the server's default answer
    body = llm_server.requests[-1].body
    assert body["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "And again?"},
    ]
    assert body["model"] == OPENAI_MODEL and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.0 and "max_tokens" not in body
    assert llm_server.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


async def test_the_length_limit_the_instances_model_and_extra_headers_are_sent(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    provider = remote(llm_server, headers={"X-Team": "blue"})
    manager = make_manager(provider)
    session = Session(
        manager, chain=CHAIN, model="other-model", params=GenerationParams(max_tokens=5)
    )

    reply = await session.submit("hello")
    await session.aclose()

    assert reply.status is Status.ANSWERED
    request = llm_server.requests[-1]
    assert request.body["max_tokens"] == 5 and "temperature" not in request.body
    assert request.body["model"] == OPENAI_MODEL  # a chat's model name could be another server's
    assert request.headers["x-team"] == "blue"


async def test_a_server_that_refuses_stream_options_is_asked_without_them(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(reject_stream_options=True))
    manager = make_manager(remote(llm_server))

    first = await answer(manager, CHAIN)
    second = await answer(manager, CHAIN)

    assert [first.status, second.status] == [Status.ANSWERED] * 2
    assert first.provider_id == second.provider_id == "remote"
    sent = [("stream_options" in r.body) for r in llm_server.requests]
    assert sent == [True, False, False]  # refused once, then never sent again


# Failures before the first chunk: the chain moves on


async def test_429_with_retry_after_cools_the_provider_down_for_that_long(
    llm_server: FakeLLMServer, make_manager: MakeManager, clock: ManualClock
) -> None:
    llm_server.push(Behaviour(status=429, message="slow down", headers={"Retry-After": "7"}))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.ANSWERED and reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "rate limited"
    assert "slow down" in reply.attempts[0].message
    breaker = manager.breaker("remote")
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_probe() == pytest.approx(7.0)
    skipped = await answer(manager, CHAIN)
    assert skipped.attempts[0].outcome == "skipped" and len(llm_server.requests) == 1
    clock.advance(7.0)
    assert (await answer(manager, CHAIN)).provider_id == "remote"  # the probe succeeds
    assert breaker.state is BreakerState.CLOSED


async def test_retry_after_ms_is_understood(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "30"}
    llm_server.push(Behaviour(status=429, headers=headers))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert manager.breaker("remote").seconds_until_probe() == pytest.approx(1.5)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_failures_and_three_open_the_breaker(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int
) -> None:
    llm_server.push(*[Behaviour(status=status, message="upstream exploded")] * 3)
    manager = make_manager(remote(llm_server))

    replies = [await answer(manager, CHAIN) for _ in range(4)]

    assert all(r.status is Status.ANSWERED and r.provider_id == "fallback" for r in replies)
    assert [r.attempts[0].outcome for r in replies] == ["failure"] * 3 + ["skipped"]
    assert replies[0].attempts[0].message == f"Remote failed (HTTP {status}): upstream exploded"
    assert manager.breaker("remote").state is BreakerState.OPEN
    assert len(llm_server.requests) == 3


@pytest.mark.parametrize("status", [401, 402, 403])
async def test_auth_and_billing_failures_need_attention(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int
) -> None:
    llm_server.push(Behaviour(status=status, message="no access"))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)
    again = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    outcome, message = reply.attempts[0].outcome, reply.attempts[0].message
    assert outcome == "needs attention"
    assert f"(HTTP {status}): no access" in message
    assert "key for this provider in Settings" in message
    assert manager.breaker("remote").state is BreakerState.NEEDS_ATTENTION
    assert again.attempts[0].outcome == "skipped" and len(llm_server.requests) == 1
    manager.reset("remote")  # the user fixed the key
    assert (await answer(manager, CHAIN)).provider_id == "remote"


async def test_a_wrong_key_is_refused_by_the_server(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    manager = make_manager(remote(llm_server, key="sk-wrong"))

    reply = await answer(manager, CHAIN)

    assert reply.attempts[0].outcome == "needs attention"
    assert manager.breaker("remote").state is BreakerState.NEEDS_ATTENTION


async def test_a_missing_model_needs_attention(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(status=404, message="The model does not exist"))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.attempts[0].outcome == "needs attention"
    assert "base URL and the model name" in reply.attempts[0].message


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_an_invalid_request_stops_the_chain_and_spares_the_breaker(
    llm_server: FakeLLMServer, make_manager: MakeManager, status: int
) -> None:
    llm_server.push(Behaviour(status=status, message="context length exceeded"))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.FAILED and reply.text == ""
    assert [a.provider_id for a in reply.attempts] == ["remote"]  # the fallback was not asked
    assert reply.attempts[0].outcome == "invalid request"
    assert reply.error == f"Remote rejected the request (HTTP {status}): context length exceeded"
    breaker = manager.breaker("remote")
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


async def test_an_unreachable_server_is_a_failure(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    provider = remote(llm_server)
    await llm_server.close()  # nothing listens on its port any more
    manager = make_manager(provider)

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "failure"
    assert reply.attempts[0].message.startswith("The connection to Remote failed")


async def test_hanging_before_the_first_byte_times_out_and_moves_on(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(hang=True))
    manager = make_manager(remote(llm_server, timeouts={"first_byte": 0.2}))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "failure"
    assert reply.attempts[0].message == "Remote sent no answer within 0.2 s."
    await llm_server.wait_for_disconnects(1)  # the request was abandoned, not left open


async def test_the_managers_first_chunk_timeout_ends_a_hung_request(
    llm_server: FakeLLMServer, make_manager: MakeManager, clock: ManualClock
) -> None:
    llm_server.push(Behaviour(hang=True))
    manager = make_manager(remote(llm_server), first_chunk_timeout=30.0)
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await llm_server.wait_for_requests(1)

    clock.advance(31.0)
    reply = await request
    await session.aclose()

    assert reply.provider_id == "fallback"
    assert reply.attempts[0] == ("remote", "failure", "no answer within 30 s")
    await llm_server.wait_for_disconnects(1)


async def test_a_stream_that_breaks_before_its_first_chunk_moves_on(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(close_after=0))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback" and reply.attempts[0].outcome == "failure"


@pytest.mark.parametrize(
    "garbage",
    [b"data: {this is not json\n\n", b'data: {"choices": "none"}\n\n'],
    ids=["not-json", "wrong-shape"],
)
async def test_malformed_data_before_any_text_moves_on(
    llm_server: FakeLLMServer, make_manager: MakeManager, garbage: bytes
) -> None:
    llm_server.push(Behaviour(garbage_after=0, garbage=garbage))
    manager = make_manager(remote(llm_server))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "failure"
    assert reply.attempts[0].message.startswith("Remote sent a malformed stream")


# Failures after the first chunk: the partial answer is kept, no silent switch


async def expect_partial(manager: MakeManager, provider: OpenAIProvider) -> tuple[Any, Any]:
    built = manager(provider)
    reply = await answer(built, CHAIN)
    assert reply.status is Status.FAILED
    assert reply.text == "Hello" and reply.provider_id == "remote"
    assert [a.provider_id for a in reply.attempts] == ["remote"]
    assert reply.attempts[0].outcome == "failure"
    return reply, built


async def test_a_stall_mid_stream_keeps_the_partial_text(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(stall_after=1))

    reply, _ = await expect_partial(make_manager, remote(llm_server, timeouts={"read": 0.2}))

    assert reply.error == "Remote stopped sending for 0.2 s in the middle of the answer."
    await llm_server.wait_for_disconnects(1)


async def test_the_managers_gap_timeout_ends_a_stalled_stream(
    llm_server: FakeLLMServer, make_manager: MakeManager, clock: ManualClock
) -> None:
    llm_server.push(Behaviour(stall_after=1))
    manager = make_manager(remote(llm_server), gap_timeout=20.0)
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    clock.advance(21.0)
    reply = await request
    await session.aclose()

    assert reply.status is Status.FAILED and reply.text == "Hello"
    assert reply.attempts == (("remote", "failure", "the answer stalled for 20 s"),)
    await llm_server.wait_for_disconnects(1)


async def test_a_connection_closed_mid_stream_keeps_the_partial_text(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(close_after=1))

    reply, _ = await expect_partial(make_manager, remote(llm_server))

    assert reply.error.startswith("The connection to Remote failed")


async def test_malformed_data_mid_stream_keeps_the_partial_text(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(garbage_after=1))

    reply, _ = await expect_partial(make_manager, remote(llm_server))

    assert reply.error.startswith("Remote sent a malformed stream")


async def test_an_error_event_mid_stream_keeps_the_partial_text(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(error_event_after=1, message="the model crashed"))

    reply, _ = await expect_partial(make_manager, remote(llm_server))

    assert reply.error == "Remote failed while answering: the model crashed"


async def test_a_stream_that_ends_without_finishing_is_a_failure(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(chunks=("Hello",), finish=False))

    reply, manager = await expect_partial(make_manager, remote(llm_server))

    assert reply.error == "Remote ended the answer before finishing it."
    assert manager.breaker("remote").consecutive_failures == 1


# Stopping


async def test_stop_closes_the_connection_keeps_the_text_and_spares_the_breaker(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    llm_server.push(Behaviour(stall_after=1))
    manager = make_manager(remote(llm_server))
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    session.stop()
    reply = await request
    await llm_server.wait_for_disconnects(1)
    follow_up = await session.submit("next")
    await session.aclose()

    assert reply.status is Status.STOPPED and reply.text == "Hello"
    assert reply.attempts == (("remote", "stopped", ""),)
    assert follow_up.status is Status.ANSWERED and follow_up.provider_id == "remote"
    breaker = manager.breaker("remote")
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


async def test_many_answers_at_once_share_one_client(
    llm_server: FakeLLMServer, make_manager: MakeManager
) -> None:
    manager = make_manager(remote(llm_server, limit=3))
    sessions = [Session(manager, chain=CHAIN) for _ in range(6)]

    replies = await asyncio.gather(*(s.submit(f"q{i}") for i, s in enumerate(sessions)))
    for session in sessions:
        await session.aclose()

    assert all(r.status is Status.ANSWERED and r.provider_id == "remote" for r in replies)
    assert manager.snapshot().providers[0].limit == 3
