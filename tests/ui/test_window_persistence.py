"""Through the window: chats are recorded as they happen and come back after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from PySide6.QtCore import Qt, QUrl
from pytestqt.qtbot import QtBot

from valis_desktop.api import Persona, Role
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.builtin.personas import ASSISTANT
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.settings import EngineSettings, Settings
from valis_desktop.core.store import Recorder, Store
from valis_desktop.testing import Script, ScriptedProvider
from valis_desktop.ui.chat_tab import ChatTab
from valis_desktop.ui.conversations import Conversations
from valis_desktop.ui.main_window import MainWindow

T = TypeVar("T")
COACH = Persona(id="coach", name="Coach", system_prompt="Encourage.")


def wait(qtbot: QtBot, awaitable: Awaitable[T]) -> T:
    future = asyncio.ensure_future(awaitable)
    qtbot.waitUntil(future.done, timeout=10_000)
    return future.result()


@pytest.fixture
def start(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> Iterator[Callable[[], MainWindow]]:
    """Start the window on the store in tmp_path, as the app does; each call is a new run."""
    windows: list[MainWindow] = []

    def run() -> MainWindow:
        manager = ProviderManager()
        manager.add_provider(
            ScriptedProvider(id="p", default=lambda r: Script(chunks=("re: ", r.prompt))),
            plugin="test",
        )
        manager.add_provider(FallbackProvider(), plugin="fallback")
        settings = Settings(engine=EngineSettings(default_chain=["p", "fallback"]))
        personas = {ASSISTANT.id: ASSISTANT, COACH.id: COACH}
        engine = Engine(PluginHost(safe_mode=True), manager, personas, settings)
        store = wait(qtbot, Store.open(tmp_path / "conversations.sqlite3"))
        wait(qtbot, store.recover())
        conversations = Conversations(store, Recorder(store, clock=manager.clock))
        window = MainWindow(engine, conversations=conversations)
        wait(qtbot, window.restore())
        window.show()
        windows.append(window)
        return window

    yield run
    for window in windows:  # shut down as the app does, not just closed by qtbot
        quit_(qtbot, window)
        window.deleteLater()


def quit_(qtbot: QtBot, window: MainWindow) -> None:
    if not window._shut_down:
        with qtbot.waitSignal(window.shutdown_finished, timeout=10_000):
            window.close()


def send(qtbot: QtBot, tab: ChatTab, text: str) -> None:
    qtbot.keyClicks(tab.composer, text)
    qtbot.keyClick(tab.composer, Qt.Key.Key_Return)


def test_a_restart_restores_tabs_titles_personas_chains_and_history(
    qtbot: QtBot, start: Callable[[], MainWindow]
) -> None:
    window = start()
    first = window.current_tab()
    assert first is not None
    send(qtbot, first, "hello")
    send(qtbot, first, "again")
    second = window.new_tab()
    second.persona_picker.setCurrentIndex(second.persona_picker.findData("coach"))
    second.set_chain(["fallback"])
    send(qtbot, second, "cheer me up")
    qtbot.waitUntil(lambda: first.settled and second.settled)
    first.rename("Greetings")
    quit_(qtbot, window)

    again = start()

    tabs = again.chat_tabs
    assert [tab.title for tab in tabs] == ["Greetings", "cheer me up"]
    restored, coached = tabs
    assert [m.content for m in restored.session.history] == [
        "hello",
        "re: hello",
        "again",
        "re: again",
    ]
    assert restored.session.chain == ("p", "fallback")
    assert coached.session.persona == COACH
    assert coached.session.chain == ("fallback",)
    assert coached.session.history[0].role is Role.USER
    text = restored.view.toPlainText()
    assert text.index("re: hello") < text.index("re: again")
    send(qtbot, restored, "and now?")  # the conversation goes on, with its context
    qtbot.waitUntil(lambda: restored.settled)
    assert "re: and now?" in restored.view.toPlainText()


def test_a_closed_chat_stays_in_the_history_and_can_be_reopened(
    qtbot: QtBot, start: Callable[[], MainWindow]
) -> None:
    window = start()
    tab = window.current_tab()
    assert tab is not None
    send(qtbot, tab, "remember me")
    qtbot.waitUntil(lambda: tab.settled)
    conversation_id = tab.session.id
    window.close_tab(tab)
    qtbot.waitUntil(lambda: not window._background)
    assert all(t.session.id != conversation_id for t in window.chat_tabs)

    reopened = wait(qtbot, window.open_conversation(conversation_id))

    assert reopened is not None and reopened is window.current_tab()
    assert "re: remember me" in reopened.view.toPlainText()
    assert [m.content for m in reopened.session.history] == ["remember me", "re: remember me"]


def test_history_search_reopens_a_closed_chat_at_the_match_and_delete_closes_an_open_one(
    qtbot: QtBot, start: Callable[[], MainWindow]
) -> None:
    window = start()
    old = window.current_tab()
    assert old is not None
    send(qtbot, old, "where is the platypus?")
    qtbot.waitUntil(lambda: old.settled)
    old_id = old.session.id
    open_now = window.new_tab()
    send(qtbot, open_now, "another chat")
    qtbot.waitUntil(lambda: open_now.settled)
    window.close_tab(old)
    qtbot.waitUntil(lambda: not window._background)

    window.show_history()
    history = window._history
    assert history is not None and history.isVisible()
    qtbot.keyClicks(history.search, "platypus")
    qtbot.waitUntil(lambda: history._searching and not history.busy and history.list.count() > 0)
    history.list.setCurrentRow(0)
    history.open_current()
    qtbot.waitUntil(
        lambda: window.current_tab() is not None and window.current_tab().session.id == old_id
    )
    reopened = window.current_tab()
    assert reopened is not None
    qtbot.waitUntil(lambda: "platypus" in reopened.view.textCursor().selectedText())

    history.deleted.emit(open_now.session.id)  # as after the user confirmed a delete
    qtbot.waitUntil(lambda: open_now not in window.chat_tabs and not window._background)
    assert all(t.session.id != open_now.session.id for t in window.chat_tabs)


def test_an_answer_cut_off_by_quitting_comes_back_interrupted_and_can_be_retried(
    qtbot: QtBot, start: Callable[[], MainWindow]
) -> None:
    window = start()
    tab = window.current_tab()
    assert tab is not None
    provider = window.engine.manager.provider("p")
    assert isinstance(provider, ScriptedProvider)
    provider.push(Script(chunks=("half an answer", "never"), hang_after=1))
    send(qtbot, tab, "tell me everything")
    qtbot.waitUntil(lambda: "half an answer" in tab.view.toPlainText())
    quit_(qtbot, window)  # while the answer streams

    again = start()

    restored = again.current_tab()
    assert restored is not None
    text = restored.view.toPlainText()
    assert "half an answer" in text and "interrupted" in text.lower()
    [answer_id] = restored._restored
    restored.view.retry_requested.emit(answer_id)  # its Retry link
    qtbot.waitUntil(
        lambda: restored.settled and "re: tell me everything" in restored.view.toPlainText()
    )


def test_a_message_queued_when_the_app_quit_comes_back_not_sent_and_can_be_sent(
    qtbot: QtBot, start: Callable[[], MainWindow]
) -> None:
    window = start()
    tab = window.current_tab()
    assert tab is not None
    provider = window.engine.manager.provider("p")
    assert isinstance(provider, ScriptedProvider)
    provider.push(Script(chunks=("thinking",), hang_after=1))
    send(qtbot, tab, "first")
    qtbot.waitUntil(lambda: "thinking" in tab.view.toPlainText())
    send(qtbot, tab, "second, typed ahead")
    qtbot.waitUntil(lambda: len(tab.session.queued) == 1)
    quit_(qtbot, window)

    again = start()

    restored = again.current_tab()
    assert restored is not None
    assert "Not sent: Valis Desktop closed before this message's turn. Send it now" in (
        restored.view.toPlainText()
    )
    [unsent] = [e.item for e in restored.view._entries if e.item.status == "not sent"]
    assert unsent.text == "second, typed ahead"
    link = QUrl(f"valis:resend/{unsent.message_id}")
    restored.view.anchorClicked.emit(link)
    restored.view.anchorClicked.emit(link)  # a second click sends nothing more
    qtbot.waitUntil(
        lambda: restored.settled and "re: second, typed ahead" in restored.view.toPlainText()
    )
    assert restored.view.toPlainText().count("re: second, typed ahead") == 1
    assert "Sent again below." in restored.view.toPlainText()
    assert "Send it now" not in restored.view.toPlainText()
