"""The ``openai`` provider's "test connection", a real answer from the embedded model's
OpenAI-compatible server, and the API key kept out of every log and message."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from valis_local import LocalProvider
from valis_openai import OpenAIInstance, OpenAIProvider, check_connection

from valis_desktop.api import ChatRequest, GenerationParams, Message, ProviderError, Role
from valis_desktop.core.request import EventKind, Status
from valis_desktop.core.session import Session

from .engine import TEST_KEY, MakeManager, answer
from .fake_llm_server import ANTHROPIC_MODEL, OPENAI_MODEL, Behaviour, FakeLLMServer


def instance(server: FakeLLMServer, **settings: Any) -> OpenAIInstance:
    base = {"id": "remote", "name": "Remote", "model": OPENAI_MODEL, "base_url": server.url + "/v1"}
    return OpenAIInstance.model_validate(base | settings)


# Test connection


async def test_a_working_endpoint_lists_its_models_and_answers(llm_server: FakeLLMServer) -> None:
    check = await check_connection(instance(llm_server), TEST_KEY)

    assert check.ok and check.models == (ANTHROPIC_MODEL, OPENAI_MODEL)
    assert check.message == f"Connected: {OPENAI_MODEL} answered. It lists 2 models."
    probe = llm_server.requests[-1].body
    assert probe["max_tokens"] == 1 and not probe.get("stream")


async def test_a_model_the_server_does_not_list_is_mentioned(llm_server: FakeLLMServer) -> None:
    llm_server.models = ["something-else"]

    check = await check_connection(instance(llm_server), TEST_KEY)

    assert check.ok and check.models == ("something-else",)
    assert "does not list it" in check.message


async def test_a_wrong_key_fails_the_check_and_says_what_to_do(llm_server: FakeLLMServer) -> None:
    check = await check_connection(instance(llm_server), "sk-wrong")

    assert not check.ok and check.models == ()
    assert check.message.startswith("Remote refused the API key (HTTP 401)")
    assert "Settings" in check.message


async def test_a_failing_model_fails_the_check(llm_server: FakeLLMServer) -> None:
    llm_server.push(Behaviour(status=404, message="model not found"))

    check = await check_connection(instance(llm_server), TEST_KEY)

    assert not check.ok and check.models == (ANTHROPIC_MODEL, OPENAI_MODEL)
    assert "model not found" in check.message


async def test_an_unreachable_endpoint_fails_the_check(llm_server: FakeLLMServer) -> None:
    settings = instance(llm_server)
    await llm_server.close()

    check = await check_connection(settings, TEST_KEY)

    assert not check.ok and check.message.startswith("The connection to Remote failed")


# The embedded model's server: a real OpenAI-compatible endpoint


async def test_a_real_answer_streams_from_the_embedded_models_server(
    make_manager: MakeManager,
) -> None:
    local = LocalProvider()
    await local.load()
    try:
        endpoint = local.endpoint
        assert endpoint is not None
        settings = OpenAIInstance(
            id="llama", model="smollm2", base_url=endpoint.url + "/v1", limit=1
        )
        manager = make_manager(OpenAIProvider(settings, endpoint.api_key))
        session = Session(
            manager, chain=["llama"], params=GenerationParams(temperature=0.0, max_tokens=12)
        )
        chunks: list[str] = []
        session.subscribe(lambda e: chunks.append(e.chunk) if e.kind is EventKind.CHUNK else None)

        reply = await session.submit("Name three colours.")
        await session.aclose()
        check = await check_connection(settings, endpoint.api_key)
        refused = await check_connection(settings, "not-the-key")
    finally:
        await local.aclose()

    assert reply.status is Status.ANSWERED and reply.provider_id == "llama"
    assert reply.text.strip() and len(chunks) >= 3 and "".join(chunks) == reply.text
    assert reply.usage is not None and 0 < (reply.usage.completion_tokens or 0) <= 12
    assert check.ok and check.models
    assert not refused.ok and "refused the API key (HTTP 401)" in refused.message


# The key stays secret


async def test_the_key_never_reaches_logs_errors_or_replies(
    llm_server: FakeLLMServer, make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's and the HTTP client's debug records too
    echoed = f"invalid key {TEST_KEY}"  # a server that repeats the key back
    llm_server.push(
        Behaviour(status=401, message=echoed),
        Behaviour(status=500, message=echoed),
        Behaviour(status=429, message=echoed),
        Behaviour(status=400, message=echoed),
        Behaviour(error_event_after=1, message=echoed),
        Behaviour(garbage_after=0, garbage=f"data: {{{TEST_KEY}\n\n".encode()),
    )
    provider = OpenAIProvider(instance(llm_server), TEST_KEY)
    request = ChatRequest(
        request_id="r", session_id="s", messages=(Message(role=Role.USER, content="hi"),)
    )
    errors: list[ProviderError] = []
    for _ in range(6):
        with pytest.raises(ProviderError) as caught:
            async for _item in provider.stream(request):
                pass
        errors.append(caught.value)
    manager = make_manager(provider)
    llm_server.push(Behaviour(status=401, message=echoed))
    reply = await answer(manager, ["remote", "fallback"])
    check = await check_connection(instance(llm_server), TEST_KEY)
    llm_server.push(Behaviour(status=401, message=echoed))
    failed_check = await check_connection(instance(llm_server), TEST_KEY)

    assert check.ok and not failed_check.ok
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [e.message for e in errors]
    texts += [repr(provider), reply.error, failed_check.message]
    texts += [attempt.message for attempt in reply.attempts]
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None
    assert [TEST_KEY in text for text in texts] == [False] * len(texts)
    assert "[API key]" in errors[0].message
    assert TEST_KEY not in caplog.text
    assert {"openai._base_client", "httpx2"} <= {r.name for r in caplog.records}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
