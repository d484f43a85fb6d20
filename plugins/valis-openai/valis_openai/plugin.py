"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``openai``:
one provider per configured instance (none when nothing is configured), and the Settings
dialog's form for the instances."""

from __future__ import annotations

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


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.instances(OpenAIInstance):
        register(OpenAIProvider(instance, context.api_key(instance.id, instance.api_key_env)))


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
