"""Helpers of the plugin API that plugins share: an HTTP endpoint's settings, its key, and
messages safe to show."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from valis_desktop.api import (
    HttpInstance,
    HttpTimeouts,
    PluginContext,
    TransientError,
    describe_invalid,
    import_in_thread,
    redact,
    shorten,
)


class Endpoint(HttpInstance):
    base_url: str = "https://api.example.com/v1"
    """The API's address."""


def test_an_http_instance_checks_what_every_endpoint_has() -> None:
    endpoint = Endpoint(id="ex", model="m", base_url=" http://127.0.0.1:8080/v1/ ")
    assert endpoint.base_url == "http://127.0.0.1:8080/v1"
    assert endpoint.display_name == "ex (m)" and endpoint.limit == 4

    with pytest.raises(ValidationError) as invalid:
        Endpoint(id="ex", model="m", base_url="ftp://example.com")
    assert describe_invalid(invalid.value) == (
        "base_url: must be an http:// or https:// address, such as https://api.example.com/v1"
    )
    with pytest.raises(ValidationError, match="API keys never go in the settings file"):
        Endpoint.model_validate({"id": "ex", "model": "m", "api_key": "sk-secret"})
    with pytest.raises(ValidationError, match="carries a credential"):
        Endpoint(id="ex", model="m", headers={"Authorization": "Bearer sk-secret"})


def context(secrets: dict[str, str], problems: list[str]) -> PluginContext:
    return PluginContext("ex", {}, secrets.get, problems.append)


def test_the_key_comes_from_the_keychain_then_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problems: list[str] = []
    monkeypatch.setenv("EX_KEY", "from-env")
    monkeypatch.delenv("EX_MISSING", raising=False)

    assert context({"a": "from-keychain"}, problems).api_key("a", "EX_KEY") == "from-keychain"
    assert context({}, problems).api_key("a", "EX_KEY") == "from-env"
    assert context({}, problems).api_key("a") is None  # a local server may need none
    assert problems == []
    assert context({}, problems).api_key("a", "EX_MISSING") is None
    assert problems == [
        "The environment variable EX_MISSING named by the instance 'a' is not set, and the "
        "keychain holds no key for it: requests go out without a key. Set the key in Settings, "
        "or set the variable."
    ]


def test_messages_are_short_and_never_carry_the_key() -> None:
    assert shorten("  a\n\tb  ") == "a b"
    assert shorten("x" * 400) == "x" * 299 + "…"
    assert redact("bad key sk-1 (sk-1)", "sk-1") == "bad key [API key] ([API key])"
    assert redact("text", None) == "text"
    error = TransientError("the server said sk-1").redacted("sk-1")
    assert error.message == "the server said [API key]" == str(error)


def test_a_timeout_says_which_one_ran_out() -> None:
    timeouts = HttpTimeouts(first_byte=120, read=30)
    assert timeouts.expired("Ollama", started=False).message == (
        "Ollama sent no answer within 120 s."
    )
    assert timeouts.expired("Ollama", started=True).message == (
        "Ollama stopped sending for 30 s in the middle of the answer."
    )


async def test_a_module_is_imported_on_a_worker_thread_once() -> None:
    name = "tests.core.sample_plugins.kit"
    sys.modules.pop(name, None)
    module = await import_in_thread(name)
    assert sys.modules[name] is module
    assert await import_in_thread(name) is module
