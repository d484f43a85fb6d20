"""A plugin built for a plugin API newer than the application's."""

from valis_desktop.api import RegisterProvider, hookimpl
from valis_desktop.testing import ScriptedProvider

VALIS_API_VERSION = (2, 0)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(ScriptedProvider(id="newer"))
