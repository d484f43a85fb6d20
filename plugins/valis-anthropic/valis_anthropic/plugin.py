"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``anthropic``:
one provider per configured instance (none when nothing is configured), and the Settings
dialog's form for the instances."""

from __future__ import annotations

from valis_anthropic.connection_check import check_connection
from valis_anthropic.provider import AnthropicProvider
from valis_anthropic.settings import AnthropicInstance
from valis_desktop.api import (
    PluginContext,
    RegisterProvider,
    RegisterSettingsForm,
    SettingsForm,
    hookimpl,
)

PLUGIN = "anthropic"


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.instances(AnthropicInstance):
        # Never the SDK's own key sources (ANTHROPIC_API_KEY, profiles on disk): which key is
        # used is the user's explicit choice.
        register(AnthropicProvider(instance, context.api_key(instance.id, instance.api_key_env)))


@hookimpl
def register_settings_forms(register: RegisterSettingsForm) -> None:
    register(
        SettingsForm(
            PLUGIN,
            "Anthropic (Claude)",
            AnthropicInstance,
            description=(
                "Claude models through Anthropic's API. Add one instance per model; the key "
                "comes from console.anthropic.com."
            ),
            secret_field="api_key",
            test_connection=check_connection,
        )
    )
