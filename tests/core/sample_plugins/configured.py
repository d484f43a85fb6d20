from valis_desktop.api import PluginContext, RegisterProvider, hookimpl
from valis_desktop.testing import ScriptedProvider


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    for instance in context.settings.get("instances", []):
        if "id" not in instance:
            context.problem(f"an instance without an id was skipped: {instance}")
            continue
        key = context.secret(instance["id"])
        register(ScriptedProvider(id=instance["id"], display_name=f"key={key}"))
