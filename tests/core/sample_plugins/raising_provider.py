from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider, RegisterProvider, hookimpl


class Raising(Provider):
    id = "raising"
    display_name = "Raising"

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        raise ZeroDivisionError("a bug in the plugin")
        yield ""


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(Raising())
