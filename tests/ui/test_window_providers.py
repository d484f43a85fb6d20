"""End to end through the window with the real plugins: an OpenAI-compatible endpoint that
fails, the embedded model behind it, the fallback last."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.plugins.fake_llm_server import OPENAI_MODEL, Behaviour, FakeLLMServer
from valis_desktop.api import GenerationParams
from valis_desktop.core.engine import Engine
from valis_desktop.core.request import Status
from valis_desktop.core.settings import Settings
from valis_desktop.ui.main_window import MainWindow

T = TypeVar("T")


def wait(qtbot: QtBot, awaitable: Awaitable[T], timeout: int = 10_000) -> T:
    future = asyncio.ensure_future(awaitable)
    qtbot.waitUntil(future.done, timeout=timeout)
    return future.result()


@pytest.fixture
def server(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    wait(qtbot, server.start())
    yield server
    wait(qtbot, server.close())


def test_a_failing_endpoint_opens_its_breaker_and_the_local_model_answers(
    qtbot: QtBot, server: FakeLLMServer
) -> None:
    server.push(*(Behaviour(status=500, message="upstream exploded") for _ in range(3)))
    remote = {
        "id": "remote",
        "name": "Remote",
        "model": OPENAI_MODEL,
        "base_url": server.url + "/v1",
    }
    settings = Settings.model_validate(
        {
            "engine": {"default_chain": ["remote", "local", "fallback"]},
            "plugins": {"openai": {"instances": [remote]}},
        }
    )
    engine = Engine.start(settings=settings)  # the installed plugins, through their entry points
    window = MainWindow(engine)
    window.show()
    tab = window.current_tab()
    assert tab is not None
    tab.session.params = GenerationParams(temperature=0.0, max_tokens=8)

    for question in ("Say hi.", "Say yes.", "Say no.", "Say ok."):
        qtbot.keyClicks(tab.composer, question)
        qtbot.keyClick(tab.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: tab.settled, timeout=60_000)

    replies = [request.result() for request in tab._requests.values()]
    assert [reply.status for reply in replies] == [Status.ANSWERED] * 4
    assert [reply.provider_id for reply in replies] == ["local"] * 4
    assert [a.outcome for a in replies[0].attempts] == ["failure", "answered"]
    assert [a.outcome for a in replies[3].attempts] == ["skipped", "answered"]
    assert len(server.requests) == 3
    assert "Local tiny model (offline)" in tab.view.toPlainText()
    window.status_refresher.refresh()
    model = window.status_panel.providers_model
    states = {
        str(model.index(row, 0).data()): str(model.index(row, 1).data())
        for row in range(model.rowCount())
    }
    assert states["Remote"].startswith("open")
    assert states["Local tiny model (offline)"] == "closed"

    with qtbot.waitSignal(window.shutdown_finished, timeout=20_000):
        window.close()
    window.deleteLater()
