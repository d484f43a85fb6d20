from valis_desktop.api import RegisterProvider, hookimpl
from valis_desktop.testing import ScriptedProvider


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(ScriptedProvider(id="half-registered"))
    raise RuntimeError("the hook fell over")
