"""The ``openai`` plugin's configuration: instances from the settings file, keys from the
keychain or the environment, and a bad instance reported and skipped while the others load."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import pytest
from valis_openai import OpenAIProvider

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.plugins import PluginHost, PluginRecord, PluginState
from valis_desktop.core.provider_manager import ProviderManager

from .engine import TEST_KEY

GOOD = {"id": "ollama", "name": "Ollama", "base_url": "http://127.0.0.1:11434/v1", "model": "m"}


def load(
    settings: Mapping[str, Any], secrets: Mapping[str, str] | None = None
) -> tuple[ProviderManager, PluginRecord]:
    """Load the installed ``openai`` entry point with these settings, as the application does."""
    keychain = dict(secrets or {})
    host = PluginHost(
        builtins={},
        entry_points=entry_points(group=ENTRY_POINT_GROUP, name="openai"),
        settings={"openai": settings},
        secrets=lambda plugin, name: keychain.get(name) if plugin == "openai" else None,
    )
    host.load()
    manager = ProviderManager()
    host.register_providers(manager)
    record = host.records["openai"]
    assert record.state is PluginState.LOADED and record.distribution == "valis-openai"
    return manager, record


def problems_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The configuration problems logged as warnings (expected here), then forgotten."""
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    return messages


def test_nothing_configured_registers_nothing() -> None:
    manager, record = load({})

    assert manager.provider_ids == () and record.problems == []


def test_each_instance_becomes_a_provider_with_its_key_and_limit() -> None:
    team = {"id": "team-vllm", "base_url": "https://llm.example.org/v1", "model": "q", "limit": 9}

    manager, record = load({"instances": [GOOD, team]}, secrets={"team-vllm": TEST_KEY})

    assert record.providers == ["ollama", "team-vllm"] and record.problems == []
    ollama, vllm = manager.provider("ollama"), manager.provider("team-vllm")
    assert isinstance(ollama, OpenAIProvider) and isinstance(vllm, OpenAIProvider)
    assert ollama.display_name == "Ollama" and vllm.display_name == "team-vllm (q)"
    assert vllm.description == "q at https://llm.example.org/v1 (OpenAI-compatible)"
    assert [p.limit for p in manager.snapshot().providers] == [4, 9]
    assert vllm._api_key == TEST_KEY and ollama._api_key is None


def test_the_key_comes_from_the_environment_when_the_keychain_has_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEAM_LLM_KEY", TEST_KEY)
    with_env = GOOD | {"api_key_env": "TEAM_LLM_KEY"}
    unset = GOOD | {"id": "unset", "api_key_env": "NOT_SET_ANYWHERE"}

    manager, record = load({"instances": [with_env, unset]})

    provider = manager.provider("ollama")
    assert isinstance(provider, OpenAIProvider) and provider._api_key == TEST_KEY
    assert record.providers == ["ollama", "unset"]  # registered, and the user is told
    assert problems_logged(caplog) == [
        "plugin 'openai': The environment variable NOT_SET_ANYWHERE named by the instance "
        "'unset' is not set, and the keychain holds no key for it: requests go out without a "
        "key. Set the key in Settings, or set the variable."
    ]


def test_a_bad_instance_is_reported_and_skipped_and_the_others_register(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instances = [
        {"id": "Bad Id", "base_url": "ftp://x", "model": ""},
        GOOD,
        {"id": "late", "model": "m", "timeouts": {"connect": -1}, "colour": "red"},
        GOOD | {"name": "twin"},
        "not a table",
    ]

    manager, record = load({"instances": instances})

    assert manager.provider_ids == ("ollama",)
    assert record.problems == [
        "[[plugins.openai.instances]] number 1 (id 'Bad Id') was skipped: id: String should "
        "match pattern '^[a-z0-9][a-z0-9_.-]{0,63}$'; model: String should have at least 1 "
        "character; base_url: must be an http:// or https:// address, such as "
        "https://api.openai.com/v1. Fix it in the settings file.",
        "[[plugins.openai.instances]] number 3 (id 'late') was skipped: timeouts.connect: "
        "Input should be greater than 0; colour: Extra inputs are not permitted. Fix it in the "
        "settings file.",
        "[[plugins.openai.instances]] number 4 (id 'ollama') was skipped: another instance "
        "already has the id 'ollama'. Give each instance its own id.",
        "[[plugins.openai.instances]] number 5 is not a table; it was skipped.",
    ]
    assert len(problems_logged(caplog)) == 4


def test_instances_that_are_not_a_list_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    manager, record = load({"instances": {"id": "x"}})

    assert manager.provider_ids == ()
    assert record.problems == [
        "[plugins.openai] 'instances' must be a list of [[plugins.openai.instances]] tables; "
        "no instance was loaded."
    ]
    caplog.clear()


@pytest.mark.parametrize(
    "instance",
    [
        GOOD | {"api_key": TEST_KEY},
        GOOD | {"headers": {"Authorization": f"Bearer {TEST_KEY}"}},
    ],
    ids=["api_key", "authorization-header"],
)
def test_a_key_in_the_settings_file_is_refused_without_repeating_it(
    caplog: pytest.LogCaptureFixture, instance: dict[str, Any]
) -> None:
    manager, record = load({"instances": [instance]})

    assert manager.provider_ids == ()
    (problem,) = record.problems
    assert "store the key in Settings" in problem
    assert TEST_KEY not in problem and TEST_KEY not in caplog.text
    caplog.clear()


def test_the_length_parameter_follows_the_server() -> None:
    manager, _ = load(
        {
            "instances": [
                {"id": "openai", "model": "gpt-x"},
                GOOD,
                GOOD | {"id": "forced", "max_tokens_parameter": "max_completion_tokens"},
            ]
        }
    )

    parameters = []
    for provider_id in ("openai", "ollama", "forced"):
        provider = manager.provider(provider_id)
        assert isinstance(provider, OpenAIProvider)
        parameters.append(provider.instance.length_parameter)
    assert parameters == ["max_completion_tokens", "max_tokens", "max_completion_tokens"]


def test_a_credential_header_is_refused_and_other_headers_are_kept() -> None:
    from pydantic import ValidationError
    from valis_openai.settings import OpenAIInstance

    with pytest.raises(ValidationError, match="'Authorization' carries a credential"):
        OpenAIInstance.model_validate(
            {"id": "x", "model": "m", "headers": {"Authorization": "Bearer s3cret"}}
        )
    kept = OpenAIInstance.model_validate({"id": "x", "model": "m", "headers": {"X-Team": "a"}})
    assert kept.headers == {"X-Team": "a"}
