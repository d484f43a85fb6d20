"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``local``."""

from __future__ import annotations

from valis_desktop.api import RegisterProvider, hookimpl
from valis_local.provider import LocalProvider


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(LocalProvider())
