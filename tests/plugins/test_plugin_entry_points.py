"""The three plugins as the application finds them: cheap to load, and their Settings forms."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from valis_anthropic import AnthropicInstance
from valis_command import CommandInstance
from valis_openai import OpenAIInstance

from valis_desktop.api import ENTRY_POINT_GROUP, ConnectionCheck, SettingsForm
from valis_desktop.core.plugins import PluginHost

from .engine import TEST_KEY
from .fake_llm_server import OPENAI_MODEL, FakeLLMServer

PLUGINS = ("openai", "anthropic", "command")


def forms() -> dict[str, SettingsForm]:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in PLUGINS]
    host = PluginHost(builtins={}, entry_points=found, strict=True)
    host.load()
    return {form.plugin: form for form in host.settings_forms()}


def test_loading_the_plugins_imports_no_sdk() -> None:
    """Installed but unconfigured, the plugins cost the application's start-up nothing much:
    the SDKs (half a second for openai, a second for anthropic) load on first use only."""
    code = f"""
import json, sys
from importlib.metadata import entry_points
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
found = [ep for ep in entry_points(group="{ENTRY_POINT_GROUP}") if ep.name in {PLUGINS!r}]
host = PluginHost(builtins={{}}, entry_points=found, strict=True)
host.load()
host.register_providers(ProviderManager())
host.settings_forms()
print(json.dumps([m for m in ("openai", "anthropic", "httpx2") if m in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert json.loads(done.stdout) == []


def test_each_plugin_offers_a_form_for_its_instances() -> None:
    found = forms()

    assert set(found) == set(PLUGINS)
    assert found["openai"].instance_model is OpenAIInstance
    assert found["anthropic"].instance_model is AnthropicInstance
    assert found["command"].instance_model is CommandInstance
    assert {form.secret_field for form in found.values()} == {"api_key"}
    assert found["openai"].test_connection is not None
    assert found["anthropic"].test_connection is not None
    assert found["command"].test_connection is None  # running a model to test it is no test


@pytest.mark.parametrize("model", [OpenAIInstance, AnthropicInstance, CommandInstance])
def test_every_field_explains_itself(model: type[OpenAIInstance]) -> None:
    undocumented = [
        name
        for name, field in model.model_fields.items()
        if not field.description and name != "timeouts"
    ]

    assert undocumented == []
    assert "api_key" not in model.model_fields  # the key is kept in the keychain, not the file


async def test_the_forms_connection_test_runs_against_the_server(
    llm_server: FakeLLMServer,
) -> None:
    form = forms()["openai"]
    assert form.test_connection is not None
    instance = OpenAIInstance(id="remote", model=OPENAI_MODEL, base_url=llm_server.url + "/v1")

    check = await form.test_connection(instance, TEST_KEY)

    assert isinstance(check, ConnectionCheck) and check.ok and OPENAI_MODEL in check.models
    with pytest.raises(TypeError):
        await form.test_connection(AnthropicInstance(id="x", model="y"), TEST_KEY)
