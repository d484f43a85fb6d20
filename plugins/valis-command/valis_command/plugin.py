"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``command``:
one provider per configured instance (none when nothing is configured), and the Settings
dialog's form for the instances."""

from __future__ import annotations

import os

from valis_command.provider import CommandProvider
from valis_command.settings import CommandInstance
from valis_desktop.api import (
    PluginContext,
    RegisterProvider,
    RegisterSettingsForm,
    SettingsForm,
    hookimpl,
)

PLUGIN = "command"


def api_key(instance: CommandInstance, context: PluginContext) -> str | None:
    """The keychain's key for an instance that passes one to its command (``key_env``)."""
    if instance.key_env is None:
        return None
    key = context.secret(instance.id)
    if not key and instance.key_env not in os.environ:
        context.problem(
            f"The instance '{instance.id}' passes its key in {instance.key_env}, but the "
            "keychain holds no key for it. Set the key in Settings."
        )
    return key or None


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.instances(CommandInstance):
        register(CommandProvider(instance, api_key(instance, context)))


@hookimpl
def register_settings_forms(register: RegisterSettingsForm) -> None:
    register(
        SettingsForm(
            PLUGIN,
            "Command-line tools",
            CommandInstance,
            description=(
                "Any program that reads the conversation on its standard input and writes the "
                "answer to its standard output (llm, ollama run, a script of your own). It is "
                "stopped, with everything it started, when you stop the answer."
            ),
            secret_field="api_key",
        )
    )
