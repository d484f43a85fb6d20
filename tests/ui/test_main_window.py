"""The window end to end: tabs, type-ahead, stop, cascade and breakers, closing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from valis_desktop.api import ENTRY_POINT_GROUP, Persona, TransientError
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.builtin.personas import ASSISTANT
from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.request import Request, Status
from valis_desktop.core.settings import SETTINGS_ENV, EngineSettings, Settings
from valis_desktop.testing import Script, ScriptedProvider
from valis_desktop.ui.chat_tab import ChatTab
from valis_desktop.ui.main_window import MainWindow
from valis_desktop.ui.persona_editor import PersonaEditor
from valis_desktop.ui.plugins_dialog import PluginsDialog
from valis_desktop.ui.settings_dialog import SettingsDialog

MakeWindow = Callable[..., MainWindow]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_window(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, clock: ManualClock
) -> Iterator[MakeWindow]:
    windows: list[MainWindow] = []

    def make(*providers: ScriptedProvider, chain: tuple[str, ...] | None = None) -> MainWindow:
        manager = ProviderManager(EngineConfig(breaker=BreakerConfig(jitter=0.0)), clock=clock)
        for provider in providers:
            manager.add_provider(provider, plugin=f"test-{provider.id}")
        manager.add_provider(FallbackProvider(), plugin="fallback")
        default = chain or (*(p.id for p in providers), "fallback")
        settings = Settings(engine=EngineSettings(default_chain=list(default)))
        engine = Engine(PluginHost(safe_mode=True), manager, {ASSISTANT.id: ASSISTANT}, settings)
        window = MainWindow(engine)
        window.resize(1024, 700)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:  # shut down as the app does, not just closed by qtbot
        if not window._shut_down:
            with qtbot.waitSignal(window.shutdown_finished):
                window.close()
        window.deleteLater()


def type_and_send(qtbot: QtBot, tab: ChatTab, text: str) -> None:
    qtbot.keyClicks(tab.composer, text)
    qtbot.keyClick(tab.composer, Qt.Key.Key_Return)


def requests_of(tab: ChatTab) -> list[Request]:
    return list(tab._requests.values())


def test_two_tabs_stream_at_the_same_time(qtbot: QtBot, make_window: MakeWindow) -> None:
    more = asyncio.Event()
    provider = ScriptedProvider(
        id="p", default=lambda r: Script(chunks=(f"{r.prompt} begins", " and ends"), between=more)
    )
    window = make_window(provider)
    first = window.current_tab()
    assert first is not None
    type_and_send(qtbot, first, "left")
    second = window.new_tab()
    type_and_send(qtbot, second, "right")

    qtbot.waitUntil(lambda: "right begins" in second.view.toPlainText())
    qtbot.waitUntil(lambda: "left begins" in first.view.toPlainText())
    assert provider.active == 2
    more.set()
    qtbot.waitUntil(lambda: first.settled and second.settled)

    assert "left begins and ends" in first.view.toPlainText()
    assert "right" not in first.view.toPlainText()
    assert "right begins and ends" in second.view.toPlainText()
    assert window.tabs.tabText(0) == "left"
    assert window.tabs.tabText(1) == "right"


def test_type_ahead_queues_and_a_queued_message_can_be_cancelled(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    gates = [asyncio.Event() for _ in range(3)]
    provider = ScriptedProvider(id="p")
    provider.push(*(Script(chunks=(f"answer {i}",), gate=gate) for i, gate in enumerate(gates)))
    window = make_window(provider)
    tab = window.current_tab()
    assert tab is not None
    for text in ("one", "two", "three", "four"):
        type_and_send(qtbot, tab, text)

    qtbot.waitUntil(lambda: tab.queue.count == 3)
    assert tab.composer.toPlainText() == ""
    four = requests_of(tab)[3]
    qtbot.mouseClick(tab.queue.cancel_button(four.id), Qt.MouseButton.LeftButton)
    for expected, gate in zip((2, 1, 0), gates, strict=True):
        qtbot.waitUntil(lambda expected=expected: tab.queue.count == expected)  # type: ignore[misc]
        gate.set()
    qtbot.waitUntil(lambda: tab.settled)

    assert [call.prompt for call in provider.calls] == ["one", "two", "three"]
    assert four.result().status is Status.CANCELLED
    text = tab.view.toPlainText()
    assert text.index("answer 0") < text.index("answer 1") < text.index("answer 2")
    assert "four" not in text


def test_escape_stops_the_answer_and_the_next_message_runs(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("half an answer", "never"), hang_after=1))
    window = make_window(provider)
    tab = window.current_tab()
    assert tab is not None
    type_and_send(qtbot, tab, "long question")
    type_and_send(qtbot, tab, "next question")
    qtbot.waitUntil(lambda: "half an answer" in tab.view.toPlainText())
    assert tab.stop_button.isEnabled()

    qtbot.keyClick(tab.composer, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: tab.settled)

    stopped, following = requests_of(tab)
    assert stopped.result().status is Status.STOPPED
    assert stopped.result().text == "half an answer"
    assert following.result().status is Status.ANSWERED
    text = tab.view.toPlainText()
    assert "half an answer" in text
    assert "stopped" in text.lower()
    assert "re: next question" in text


def test_failing_provider_opens_its_breaker_and_the_chain_moves_on(
    qtbot: QtBot, make_window: MakeWindow, clock: ManualClock
) -> None:
    flaky = ScriptedProvider(id="flaky", display_name="Flaky")
    flaky.push(*(Script(error=TransientError("HTTP 503")) for _ in range(3)))
    window = make_window(flaky)
    tab = window.current_tab()
    assert tab is not None
    model = window.status_panel.providers_model

    def state_of(provider_id: str) -> str:
        for row in range(model.rowCount()):
            if model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole).find(provider_id) >= 0:
                return str(model.index(row, 1).data())
        raise AssertionError(provider_id)

    for i in range(4):
        type_and_send(qtbot, tab, f"question {i}")
    qtbot.waitUntil(lambda: tab.settled)
    window.status_refresher.refresh()
    assert state_of("flaky").startswith("open")
    replies = [request.result() for request in requests_of(tab)]
    assert [r.provider_id for r in replies] == ["fallback"] * 4
    assert len(flaky.calls) == 3
    text = tab.view.toPlainText()
    assert "Fallback (not a model)" in text
    assert text.count("Tried first: Flaky failed: HTTP 503") == 3
    assert text.count("Tried first: Flaky skipped (open)") == 1

    clock.advance(10.0)
    window.status_refresher.refresh()
    assert state_of("flaky") == "half-open"
    type_and_send(qtbot, tab, "probe")
    qtbot.waitUntil(lambda: tab.settled)
    window.status_refresher.refresh()
    assert requests_of(tab)[-1].result().provider_id == "flaky"
    assert state_of("flaky") == "closed"


def test_closing_a_busy_tab_asks_then_cancels_its_requests(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("so far",), hang_after=1))
    window = make_window(provider)
    tab = window.current_tab()
    assert tab is not None
    type_and_send(qtbot, tab, "one")
    type_and_send(qtbot, tab, "two")
    qtbot.waitUntil(lambda: "so far" in tab.view.toPlainText())

    window.request_close_tab(window.tabs.indexOf(tab))
    box = window.findChild(QMessageBox)
    assert box is not None and "still answering" in box.text()
    close = next(b for b in box.buttons() if b.text() == "Close chat")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.session.closed and not window._background)

    one, two = requests_of(tab)
    assert one.result().status is Status.STOPPED
    assert two.result().status is Status.CANCELLED
    assert [call.prompt for call in provider.calls] == ["one"]
    assert window.tabs.count() == 1  # a fresh chat replaces the last one


def test_closing_the_window_while_two_tabs_stream_shuts_down_cleanly(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    provider = ScriptedProvider(
        id="p", default=lambda r: Script(chunks=("streaming",), hang_after=1)
    )
    window = make_window(provider)
    tabs = [window.current_tab(), window.new_tab()]
    for tab in tabs:
        assert tab is not None
        type_and_send(qtbot, tab, "talk")
    qtbot.waitUntil(lambda: provider.active == 2)

    with qtbot.waitSignal(window.shutdown_finished):
        window.close()

    assert not window.isVisible()
    assert provider.closed
    assert provider.active == 0
    assert all(r.result().status is Status.STOPPED for tab in tabs for r in requests_of(tab))
    assert window.engine.sessions == []


def test_keyboard_opens_cycles_renames_and_closes_chats(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    window = make_window(ScriptedProvider(id="p"))
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow())
    tab = window.current_tab()
    assert tab is not None
    qtbot.keyClick(tab.composer, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.count() == 2 and window.tabs.currentIndex() == 1
    qtbot.waitUntil(lambda: window.focusWidget() is window.chat_tabs[1].composer)

    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Tab, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == 0
    qtbot.keyClick(
        window.focusWidget(),
        Qt.Key.Key_Backtab,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.tabs.currentIndex() == 1

    window.chat_tabs[1].rename("  Holiday   plans ")
    assert window.tabs.tabText(1) == "Holiday plans"
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.tabs.count() == 1 and not window._background)
    assert window.chat_tabs[0] is tab


def test_a_full_queue_says_so_and_keeps_the_text(qtbot: QtBot, make_window: MakeWindow) -> None:
    gate = asyncio.Event()
    window = make_window(ScriptedProvider(id="p", default=lambda r: Script(gate=gate)))
    tab = window.current_tab()
    assert tab is not None
    tab.session.max_queue = 1
    type_and_send(qtbot, tab, "first")
    qtbot.waitUntil(lambda: tab.session.running is not None)
    type_and_send(qtbot, tab, "second")
    type_and_send(qtbot, tab, "third")

    assert tab.notice.isVisible()
    assert "already waiting" in tab.notice.text()
    assert tab.composer.toPlainText() == "third"
    gate.set()
    qtbot.waitUntil(lambda: tab.settled)


def test_settings_saved_from_the_window_apply_at_once(
    qtbot: QtBot,
    make_window: MakeWindow,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "settings.toml"))
    window = make_window(ScriptedProvider(id="p"))
    window.open_settings()
    dialog = window.findChild(SettingsDialog)
    assert dialog is not None and dialog.isVisible()
    editor = dialog.engine_form.editor("global_limit")
    editor.selectAll()
    qtbot.keyClicks(editor, "4")
    with qtbot.waitSignal(dialog.saved):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    assert window.engine.manager.snapshot().global_limit == 4
    assert "global_limit = 4" in (tmp_path / "settings.toml").read_text()


def test_personas_saved_in_the_editor_appear_in_every_tab(qtbot: QtBot, tmp_path: Path) -> None:
    engine = Engine.start(host=PluginHost(safe_mode=True), library=PersonaLibrary(tmp_path))
    window = MainWindow(engine)
    window.show()
    second = window.new_tab()
    window.open_personas()
    editor = window.findChild(PersonaEditor)
    assert editor is not None and editor.isVisible()

    engine.library.save(Persona(id="critic", name="Critic", system_prompt="Be blunt."))
    editor.saved.emit("critic")

    for tab in window.chat_tabs:
        assert tab.persona_picker.findData("critic") >= 0
    assert second.session.persona is not None and second.session.persona.id == "assistant"
    editor.close()
    with qtbot.waitSignal(window.shutdown_finished):
        window.close()
    window.deleteLater()


def test_the_plugins_dialog_opens_from_the_window(qtbot: QtBot, make_window: MakeWindow) -> None:
    window = make_window(ScriptedProvider(id="p"))
    window.open_plugins()
    dialog = window.findChild(PluginsDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.close()


def window_with_plugin(tmp_path: Path, plugin: str, *, chain: list[str]) -> MainWindow:
    """A window on an engine that loaded ``tests.core.sample_plugins.<plugin>`` as installed
    plugins load (close it with ``window.close()`` and wait for ``shutdown_finished``)."""
    entry_point = EntryPoint(
        name=plugin, value=f"tests.core.sample_plugins.{plugin}", group=ENTRY_POINT_GROUP
    )
    engine = Engine.start(
        settings=Settings(engine=EngineSettings(default_chain=chain)),
        host=PluginHost(entry_points=[entry_point]),
        library=PersonaLibrary(tmp_path / "personas"),
        settings_path=tmp_path / "settings.toml",
    )
    window = MainWindow(engine)
    window.show()
    return window


def test_disabling_a_plugin_tells_the_chats_using_it_and_takes_its_persona(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    window = window_with_plugin(tmp_path, "good", chain=["good", "fallback"])
    tab = window.current_tab()
    assert tab is not None
    pickers = [tab.persona_picker.itemData(i) for i in range(tab.persona_picker.count())]
    assert "good:good.pirate" in pickers

    dialog = window.open_plugins()
    dialog.select("good")
    with qtbot.waitSignal(dialog.changed):
        qtbot.mouseClick(dialog.toggle_button, Qt.MouseButton.LeftButton)

    assert (
        "Provider good is no longer available; this chat goes on with the rest of its chain."
        in (tab.view.toPlainText())
    )
    pickers = [tab.persona_picker.itemData(i) for i in range(tab.persona_picker.count())]
    assert "good:good.pirate" not in pickers
    model = window.status_panel.providers_model

    def panel_ids() -> list[str]:
        return [s.id for row in range(model.rowCount()) if (s := model.provider_at(row))]

    qtbot.waitUntil(lambda: "good" not in panel_ids())

    with qtbot.waitSignal(dialog.changed):
        qtbot.mouseClick(dialog.toggle_button, Qt.MouseButton.LeftButton)
    assert "Provider good is available (again)." in tab.view.toPlainText()
    qtbot.waitUntil(lambda: "good" in panel_ids())
    dialog.close()
    with qtbot.waitSignal(window.shutdown_finished):
        window.close()
    window.deleteLater()


def test_a_plugin_failing_while_answering_is_set_aside_and_the_chat_goes_on(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    window = window_with_plugin(tmp_path, "raising_provider", chain=["raising", "fallback"])
    engine = window.engine
    tab = window.current_tab()
    assert tab is not None
    dialog = window.open_plugins()
    dialog.select("raising_provider")
    assert not dialog.retry_button.isVisible()

    type_and_send(qtbot, tab, "hello")

    qtbot.waitUntil(lambda: "raising" not in engine.manager.provider_ids)
    qtbot.waitUntil(lambda: tab.settled)
    assert "Fallback" in tab.view.toPlainText()
    assert "Provider raising is no longer available" in tab.view.toPlainText()
    message = window.statusBar().currentMessage()
    assert message.startswith("Plugin “raising_provider” failed while answering")
    assert "ZeroDivisionError: a bug in the plugin" in message
    assert dialog.state_label.text() == "quarantined: ZeroDivisionError: a bug in the plugin"
    assert dialog.retry_button.isVisible()
    assert "It raised this while answering" in dialog.traceback_view.toPlainText()
    caplog.clear()

    with qtbot.waitSignal(dialog.changed):
        qtbot.mouseClick(dialog.retry_button, Qt.MouseButton.LeftButton)
    assert "raising" in engine.manager.provider_ids
    assert "Provider raising is available (again)." in tab.view.toPlainText()
    dialog.close()
    with qtbot.waitSignal(window.shutdown_finished):
        window.close()
    window.deleteLater()


def test_a_personas_colour_marks_its_tab_and_its_entry_in_the_picker(
    qtbot: QtBot, tmp_path: Path
) -> None:
    window = window_with_plugin(tmp_path, "good", chain=["fallback"])
    tab = window.current_tab()
    assert tab is not None
    index = window.tabs.indexOf(tab)
    assert window.tabs.tabIcon(index).isNull()  # the default Assistant has no colour

    tab.persona_picker.setCurrentIndex(tab.persona_picker.findData("life-coach"))

    icon = window.tabs.tabIcon(index)
    assert not icon.isNull()
    colour = icon.pixmap(12, 12).toImage().pixelColor(6, 6)
    assert colour.name() == "#c0417a"
    assert window.tabs.tabToolTip(index).endswith("— Life Coach")
    picker = tab.persona_picker
    assert not picker.itemIcon(picker.findData("life-coach")).isNull()
    window.resize(1024, 700)
    assert window.grab().save(str(tmp_path / "persona_tab.png"))
    with qtbot.waitSignal(window.shutdown_finished):
        window.close()
    window.deleteLater()


def test_an_answer_says_when_earlier_messages_did_not_fit_its_context(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    small = ScriptedProvider(id="small", default=lambda r: Script(chunks=("a" * 396,)))
    small.context_tokens = 600
    window = make_window(small)
    tab = window.current_tab()
    assert tab is not None

    for n in range(4):
        type_and_send(qtbot, tab, f"q{n}".ljust(400, "."))
        qtbot.waitUntil(lambda: tab.settled)

    text = tab.view.toPlainText()
    left_out = [request.left_out for request in requests_of(tab)]
    assert left_out[0] == 0 and left_out[-1] > 0
    assert f"{left_out[-1]} earlier messages left out to fit its context" in text


def test_starting_a_message_lets_the_chats_first_provider_warm_up(
    qtbot: QtBot, make_window: MakeWindow
) -> None:
    warmed: list[str] = []

    class Warming(ScriptedProvider):
        def warm_up(self) -> None:
            warmed.append(self.id)

    window = make_window(Warming(id="slow-to-start"))
    tab = window.current_tab()
    assert tab is not None

    qtbot.keyClicks(tab.composer, "Hello")  # five keys, one warm-up
    assert warmed == ["slow-to-start"]
    qtbot.keyClick(tab.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: tab.settled)
    qtbot.keyClicks(tab.composer, "again")  # the next message warms it up again
    assert warmed == ["slow-to-start"] * 2
