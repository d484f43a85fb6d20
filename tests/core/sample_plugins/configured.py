from pydantic import BaseModel

from valis_desktop.api import (
    ConnectionCheck,
    PluginContext,
    RegisterProvider,
    RegisterSettingsForm,
    SettingsForm,
    hookimpl,
)
from valis_desktop.testing import ScriptedProvider


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.settings.get("instances", []):
        if "id" not in instance:
            context.problem(f"an instance without an id was skipped: {instance}")
            continue
        key = context.secret(instance["id"])
        register(ScriptedProvider(id=instance["id"], display_name=f"key={key}"))


class Instance(BaseModel):
    id: str
    url: str = "http://127.0.0.1"


async def check(instance: BaseModel, secret: str | None) -> ConnectionCheck:
    return ConnectionCheck(ok=secret is not None, message="checked", models=("m1",))


@hookimpl
def register_settings_forms(register: RegisterSettingsForm) -> None:
    register(
        SettingsForm(
            "configured", "Configured", Instance, secret_field="key", test_connection=check
        )
    )
