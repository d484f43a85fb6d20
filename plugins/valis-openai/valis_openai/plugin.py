"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``openai``:
one provider per configured instance (none when nothing is configured), and the Settings
dialog's form for the instances."""

from __future__ import annotations

import os

from valis_desktop.api import (
    PluginContext,
    RegisterProvider,
    RegisterSettingsForm,
    SettingsForm,
    hookimpl,
)
from valis_openai.connection_check import check_connection
from valis_openai.provider import OpenAIProvider
from valis_openai.settings import OpenAIInstance

PLUGIN = "openai"


def api_key(instance: OpenAIInstance, context: PluginContext) -> str | None:
    """The keychain's key for the instance, else the one in its ``api_key_env`` variable."""
    key = context.secret(instance.id)
    if key:
        return key
    if instance.api_key_env:
        key = os.environ.get(instance.api_key_env)
        if not key:
            context.problem(
                f"The environment variable {instance.api_key_env} named by the instance "
                f"'{instance.id}' is not set, and the keychain holds no key for it: requests go "
                "out without a key. Set the key in Settings, or set the variable."
            )
        return key or None
    return None


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.instances(OpenAIInstance):
        register(OpenAIProvider(instance, api_key(instance, context)))


@hookimpl
def register_settings_forms(register: RegisterSettingsForm) -> None:
    register(
        SettingsForm(
            PLUGIN,
            "OpenAI-compatible endpoints",
            OpenAIInstance,
            description=(
                "OpenAI, or any server that speaks its API: Ollama, LM Studio, vLLM, the "
                "llama.cpp server, a LiteLLM proxy, OpenRouter. Add one instance per server "
                "and model. Local servers usually need no key."
            ),
            secret_field="api_key",
            test_connection=check_connection,
        )
    )
