"""The echo-template provider as users meet it: loaded as a plugin (in strict mode, so that a
broken plugin fails here with its error) and asked through Valis Desktop's real session and
provider manager. The ``valis_*`` fixtures come with Valis Desktop; ``valis_plugins`` in
pyproject.toml names the plugin they load."""

from __future__ import annotations

from valis_desktop.api import Usage
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.pytest_plugin import ValisChat, ValisOpenSession
from valis_desktop.testing import first_chunk


def test_the_plugin_registers_its_provider(
    valis_plugin_host: PluginHost, valis_manager: ProviderManager
) -> None:
    record = valis_plugin_host.records["echo-template"]
    assert (record.state, record.providers, record.problems) == ("loaded", ["echo-template"], [])
    assert "echo-template" in valis_manager.provider_ids


async def test_it_streams_the_message_back(valis_chat: ValisChat) -> None:
    reply = await valis_chat("hello there, world")

    assert (reply.status, reply.provider_id) == ("answered", "echo-template")
    assert reply.text == "hello there, world"
    assert reply.usage == Usage(prompt_tokens=3, completion_tokens=3)


async def test_stopping_keeps_what_was_streamed(valis_session: ValisOpenSession) -> None:
    message = "a long message that streams in many small chunks"
    request = valis_session().submit(message)
    await first_chunk(request)

    request.cancel()
    reply = await request

    assert reply.status == "stopped"
    assert reply.text and message.startswith(reply.text) and reply.text != message
