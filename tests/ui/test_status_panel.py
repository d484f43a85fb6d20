"""The status panel: its models, the panel widget and the coalescing refresher."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QColor, QContextMenuEvent, QPalette
from PySide6.QtWidgets import QApplication, QMainWindow
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from valis_desktop.api import AuthError, TransientError
from valis_desktop.core.circuit_breaker import BreakerConfig, BreakerState
from valis_desktop.core.provider_manager import (
    EngineConfig,
    EngineListener,
    EngineSnapshot,
    ProviderManager,
    ProviderStatus,
    RequestStatus,
)
from valis_desktop.core.request import Phase
from valis_desktop.core.session import Session
from valis_desktop.testing import ManualClock, Script, ScriptedProvider
from valis_desktop.ui.status_models import (
    STATE_COLOURS,
    STATE_TINTS,
    ProvidersModel,
    RequestsModel,
    format_duration,
    format_whole_seconds,
)
from valis_desktop.ui.status_panel import StatusPanel, StatusRefresher

# The offscreen platform cannot size windows to their hints, nor raise a popup menu and give it
# the keyboard; it says so on every occasion.
pytestmark = pytest.mark.qt_log_ignore(
    r"^This plugin does not support (propagateSizeHints|raise|grabbing the keyboard)\(?\)?$"
)

T = TypeVar("T")
DISPLAY = Qt.ItemDataRole.DisplayRole


def provider(
    provider_id: str, state: BreakerState = BreakerState.CLOSED, **changes: Any
) -> ProviderStatus:
    values: dict[str, Any] = {
        "id": provider_id,
        "display_name": provider_id.title(),
        "description": "",
        "plugin": "test",
        "state": state,
        "seconds_until_probe": 17.0 if state is BreakerState.OPEN else None,
        "in_flight": 0,
        "limit": 4,
        "waiting": 0,
        "successes": 0,
        "failures": 0,
        "consecutive_failures": 0,
        "last_error": "",
        "first_chunk_p50": None,
        "first_chunk_p95": None,
        "total_p50": None,
        "total_p95": None,
    }
    values.update(changes)
    return ProviderStatus(**values)


def request(request_id: str, session_id: str = "s1", **changes: Any) -> RequestStatus:
    values: dict[str, Any] = {
        "request_id": request_id,
        "session_id": session_id,
        "prompt": f"question {request_id}",
        "provider_id": "a",
        "phase": Phase.STREAMING,
        "elapsed": 1.0,
        "first_chunk_seconds": None,
        "chars": 0,
    }
    values.update(changes)
    return RequestStatus(**values)


def snapshot(
    providers: tuple[ProviderStatus, ...] = (),
    requests: tuple[RequestStatus, ...] = (),
    in_use: int = 0,
) -> EngineSnapshot:
    return EngineSnapshot(10, in_use, providers, requests)


def column(model: ProvidersModel | RequestsModel, col: int) -> list[str]:
    return [model.data(model.index(row, col), DISPLAY) for row in range(model.rowCount())]


# Models


def test_durations_read_in_human_units() -> None:
    assert format_duration(None) == "—"
    assert format_duration(0.3404) == "340 ms"
    assert format_duration(0.9996) == "1.0 s"
    assert format_duration(2.44) == "2.4 s"
    assert format_duration(17.2) == "17 s"
    assert format_whole_seconds(185) == "3 min 05 s"
    assert format_whole_seconds(3725) == "1 h 02 min"


def test_provider_rows_show_each_state_in_text_and_colour(qtbot: QtBot) -> None:
    model = ProvidersModel()
    states = [
        BreakerState.CLOSED,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.NEEDS_ATTENTION,
    ]
    model.update(snapshot(tuple(provider(f"p{i}", s) for i, s in enumerate(states))))

    assert column(model, ProvidersModel.STATE) == [
        "closed",
        "open · probe in 17 s",
        "half-open",
        "needs attention",
    ]
    colours = [
        model.data(model.index(row, ProvidersModel.STATE), Qt.ItemDataRole.BackgroundRole)
        for row in range(4)
    ]
    assert colours == [STATE_TINTS[s] for s in states]
    assert len({c.rgba() for c in colours}) == 4
    swatches = [
        model.data(model.index(row, ProvidersModel.STATE), Qt.ItemDataRole.DecorationRole)
        for row in range(4)
    ]
    assert swatches == [STATE_COLOURS[s] for s in states]

    with qtbot.waitSignal(model.dataChanged) as changed:
        model.update(
            snapshot(
                tuple(
                    provider(f"p{i}", s, seconds_until_probe=11.2 if i == 1 else None)
                    for i, s in enumerate(states)
                )
            )
        )
    assert model.data(model.index(1, ProvidersModel.STATE)) == "open · probe in 12 s"
    assert [changed.args[0].row(), changed.args[1].row()] == [1, 1]


def test_provider_cells_format_numbers_and_explain_themselves() -> None:
    model = ProvidersModel()
    error = "HTTP 503 Service Unavailable:\nthe upstream server is overloaded"
    model.update(
        snapshot(
            (
                provider(
                    "a",
                    in_flight=2,
                    waiting=3,
                    successes=41,
                    first_chunk_p50=0.34,
                    first_chunk_p95=2.5,
                    last_error=error,
                ),
            )
        )
    )

    def cell(col: int, role: Qt.ItemDataRole = DISPLAY) -> Any:
        return model.data(model.index(0, col), role)

    assert cell(ProvidersModel.LOAD) == "2 / 4 (+3)"
    assert cell(ProvidersModel.SUCCESSES) == "41"
    assert cell(ProvidersModel.FIRST_CHUNK) == "340 ms / 2.5 s"
    assert cell(ProvidersModel.TOTAL) == "—"
    assert cell(ProvidersModel.LAST_ERROR) == " ".join(error.split())
    assert cell(ProvidersModel.LAST_ERROR, Qt.ItemDataRole.ToolTipRole) == error
    right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    assert cell(ProvidersModel.LOAD, Qt.ItemDataRole.TextAlignmentRole) == int(right)
    for col in range(model.columnCount()):
        tip = model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
        assert isinstance(tip, str) and len(tip) > 20


@pytest.mark.parametrize("force_py", [False, True], ids=["qt-tester", "py-tester"])
def test_providers_model_diffs_rows_and_keeps_the_selection(
    qtmodeltester: ModelTester, force_py: bool
) -> None:
    model = ProvidersModel()
    qtmodeltester.check(model, force_py=force_py)
    resets: list[None] = []
    model.modelReset.connect(lambda: resets.append(None))
    selection = QItemSelectionModel(model)

    model.update(snapshot((provider("a"), provider("b"), provider("c"))))
    selection.setCurrentIndex(
        model.index(1, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    model.update(snapshot((provider("b", successes=1), provider("c"), provider("d"))))
    model.update(snapshot((provider("d"), provider("b", successes=2), provider("e"))))

    assert column(model, ProvidersModel.NAME) == ["D", "B", "E"]
    assert selection.currentIndex().row() == 1
    assert column(model, ProvidersModel.SUCCESSES)[1] == "2"
    model.update(snapshot())
    assert model.rowCount() == 0
    assert resets == []


def test_any_sequence_of_snapshots_ends_in_the_right_rows(qtmodeltester: ModelTester) -> None:
    model = ProvidersModel()
    qtmodeltester.check(model)
    resets: list[None] = []
    model.modelReset.connect(lambda: resets.append(None))
    chooser = random.Random(20240611)
    for _ in range(100):
        ids = chooser.sample("abcdefgh", chooser.randint(0, 8))
        model.update(snapshot(tuple(provider(i, failures=chooser.randint(0, 2)) for i in ids)))
        assert column(model, ProvidersModel.NAME) == [i.title() for i in ids]
    assert resets == []


@pytest.mark.parametrize("force_py", [False, True], ids=["qt-tester", "py-tester"])
def test_requests_come_and_go_without_a_model_reset(
    qtmodeltester: ModelTester, force_py: bool
) -> None:
    model = RequestsModel()
    qtmodeltester.check(model, force_py=force_py)
    resets: list[None] = []
    model.modelReset.connect(lambda: resets.append(None))
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    removed: list[tuple[int, int]] = []
    model.rowsRemoved.connect(lambda _p, first, last: removed.append((first, last)))
    titles = {"s1": "Cats", "s2": "Dogs"}
    providers = (provider("a", display_name="OpenAI (work)"),)

    model.update(snapshot(providers, (request("1"), request("2", "s2"))), titles)
    model.update(
        snapshot(
            providers,
            (
                request("2", "s2", chars=120, elapsed=3.0),
                request("3", phase=Phase.QUEUED, provider_id=None),
                request("4", "s3", phase=Phase.WAITING),
            ),
        ),
        titles,
    )

    assert inserted == [(0, 1), (1, 2)] and removed == [(0, 0)]
    assert column(model, RequestsModel.TAB) == ["Dogs", "Cats", "chat s3"]
    assert column(model, RequestsModel.PROVIDER) == ["OpenAI (work)", "—", "OpenAI (work)"]
    assert column(model, RequestsModel.PHASE) == ["streaming", "queued", "waiting for a slot"]
    assert column(model, RequestsModel.CHARS)[0] == "120"
    assert column(model, RequestsModel.ELAPSED)[0] == "3 s"
    model.update(snapshot(providers), titles)
    assert model.rowCount() == 0 and removed[-1] == (0, 2)
    assert resets == []


def test_a_progress_note_follows_the_phase() -> None:
    model = RequestsModel()
    model.update(snapshot((), (request("1", progress="loading model…"),)), {})
    assert column(model, RequestsModel.PHASE) == ["streaming · loading model…"]


# The panel


def four_providers() -> tuple[ProviderStatus, ...]:
    return (
        provider(
            "local",
            display_name="Local (SmolLM2 135M)",
            in_flight=1,
            limit=1,
            waiting=1,
            successes=58,
            failures=1,
            first_chunk_p50=0.061,
            first_chunk_p95=0.42,
            total_p50=2.8,
            total_p95=6.1,
            last_error="no answer within 60 s",
        ),
        provider(
            "openai",
            BreakerState.OPEN,
            display_name="OpenAI (work)",
            failures=3,
            consecutive_failures=3,
            successes=12,
            first_chunk_p50=0.83,
            first_chunk_p95=2.4,
            total_p50=7.9,
            total_p95=19.3,
            last_error="HTTP 503 Service Unavailable: the upstream server is overloaded, "
            "please retry later",
        ),
        provider(
            "ollama",
            BreakerState.HALF_OPEN,
            display_name="Ollama (desktop)",
            in_flight=1,
            limit=2,
            successes=4,
            failures=5,
            last_error="connection refused (127.0.0.1:11434)",
        ),
        provider(
            "anthropic",
            BreakerState.NEEDS_ATTENTION,
            display_name="Anthropic",
            failures=1,
            last_error="HTTP 401: invalid x-api-key",
        ),
    )


def three_requests() -> tuple[RequestStatus, ...]:
    return (
        request(
            "1",
            "s1",
            prompt="Explain circuit breakers like I'm five, with an example",
            provider_id="local",
            elapsed=4.2,
            first_chunk_seconds=0.06,
            chars=812,
        ),
        request("2", "s2", prompt="Translate this haiku", provider_id="ollama", elapsed=1.4),
        request(
            "3",
            "s2",
            prompt="And now in French",
            provider_id="local",
            phase=Phase.WAITING,
            elapsed=0.4,
        ),
    )


TITLES = {"s1": "Breakers explained", "s2": "Poetry"}


@pytest.fixture
def window(qtbot: QtBot) -> QMainWindow:
    window = QMainWindow()
    qtbot.addWidget(window)
    return window


@pytest.fixture
def panel(window: QMainWindow) -> StatusPanel:
    """A panel docked in a main window (a floating dock is a window of its own)."""
    panel = StatusPanel(window)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, panel)
    panel.update_snapshot(snapshot(four_providers(), three_requests(), in_use=3), TITLES)
    return panel


def show(qtbot: QtBot, panel: StatusPanel, width: int = 900, height: int = 300) -> None:
    window = panel.window()
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)


def click_row(qtbot: QtBot, panel: StatusPanel, row: int) -> None:
    view = panel.providers_view
    rect = view.visualRect(panel.providers_model.index(row, ProvidersModel.NAME))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_panel_shows_the_global_slots_and_names_its_parts(panel: StatusPanel) -> None:
    assert panel.slots_label.text() == "Slots: 3 / 10"
    assert panel.requests_label.text() == "Requests in flight: 3"
    assert panel.providers_view.accessibleName() == "Providers"
    assert panel.requests_view.accessibleName() == "Requests in flight"
    assert panel.reset_button.accessibleName() == "Reset provider"


def test_reset_by_mouse_only_for_a_provider_that_is_open_or_needs_attention(
    qtbot: QtBot, panel: StatusPanel
) -> None:
    show(qtbot, panel)
    enabled = []
    for row in range(4):
        click_row(qtbot, panel, row)
        enabled.append(panel.reset_button.isEnabled())
        assert panel.reset_action.isEnabled() == enabled[-1]
    assert enabled == [False, True, False, True]

    with qtbot.waitSignal(panel.reset_requested) as reset:
        qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    assert reset.args == ["anthropic"]
    assert panel.reset_action.text() == "&Reset Anthropic"

    # Once the engine reports the provider closed, the button goes grey under the selection.
    providers = (*four_providers()[:3], provider("anthropic", display_name="Anthropic"))
    panel.update_snapshot(snapshot(providers), TITLES)
    assert panel.selected_provider_id() == "anthropic"
    assert not panel.reset_button.isEnabled()


def test_reset_by_keyboard(qtbot: QtBot, panel: StatusPanel) -> None:
    show(qtbot, panel)
    view = panel.providers_view
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key.Key_Home)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert panel.selected_provider_id() == "openai"

    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert panel.reset_button.hasFocus()
    with qtbot.waitSignal(panel.reset_requested) as reset:
        qtbot.keyClick(panel.reset_button, Qt.Key.Key_Space)
    assert reset.args == ["openai"]


def test_the_context_menu_key_offers_reset(qtbot: QtBot, panel: StatusPanel) -> None:
    show(qtbot, panel)
    view = panel.providers_view
    view.setFocus()
    view.selectRow(3)

    def choose_reset() -> None:
        menu = QApplication.activePopupWidget()
        if menu is None:  # not shown yet: look again on the next turn
            QTimer.singleShot(0, choose_reset)
            return
        assert [action.text() for action in menu.actions()] == ["&Reset Anthropic"]
        qtbot.keyClick(menu, Qt.Key.Key_Down)
        qtbot.keyClick(menu, Qt.Key.Key_Return)

    QTimer.singleShot(0, choose_reset)
    centre = view.rect().center()
    # What Qt delivers to the focused widget when the user presses the Menu key.
    menu_key = QContextMenuEvent(
        QContextMenuEvent.Reason.Keyboard, centre, view.mapToGlobal(centre)
    )
    with qtbot.waitSignal(panel.reset_requested) as reset:
        QApplication.sendEvent(view, menu_key)
    assert reset.args == ["anthropic"]


def test_screenshot_of_four_states_and_three_requests(qtbot: QtBot, panel: StatusPanel) -> None:
    show(qtbot, panel)
    panel.providers_view.selectRow(3)

    assert panel.grab().save("/tmp/status_panel.png")
    for view in (panel.providers_view, panel.requests_view):
        assert view.horizontalScrollBar().maximum() == 0, f"{view.accessibleName()} scrolls"
        assert view.verticalScrollBar().maximum() == 0, f"{view.accessibleName()} hides rows"

    panel.window().setPalette(dark_palette())
    assert panel.grab().save("/tmp/status_panel_dark.png")


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, colour in (
        (roles.Window, "#2b2b2b"),
        (roles.WindowText, "#e6e6e6"),
        (roles.Base, "#1e1e1e"),
        (roles.AlternateBase, "#262626"),
        (roles.Text, "#e6e6e6"),
        (roles.Button, "#353535"),
        (roles.ButtonText, "#e6e6e6"),
        (roles.Highlight, "#2f65ca"),
        (roles.HighlightedText, "#ffffff"),
    ):
        palette.setColor(role, QColor(colour))
    return palette


# The refresher


class CountingSource:
    """A real manager seen through a window that counts the snapshots taken."""

    def __init__(self, manager: ProviderManager) -> None:
        self.manager = manager
        self.snapshots = 0

    def subscribe(self, listener: EngineListener) -> Callable[[], None]:
        return self.manager.subscribe(listener)

    def snapshot(self) -> EngineSnapshot:
        self.snapshots += 1
        return self.manager.snapshot()


@dataclasses.dataclass
class Engine:
    qtbot: QtBot
    loop: asyncio.AbstractEventLoop
    clock: ManualClock
    manager: ProviderManager
    providers: dict[str, ScriptedProvider]
    sessions: list[Session] = dataclasses.field(default_factory=list)

    def session(self, *chain: str) -> Session:
        self.sessions.append(Session(self.manager, chain=chain))
        return self.sessions[-1]

    def run(self, awaitable: Awaitable[T]) -> T:
        future = asyncio.ensure_future(awaitable, loop=self.loop)
        self.qtbot.waitUntil(future.done)
        return future.result()


@pytest.fixture
def engine(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> Iterator[Engine]:
    """A real manager on a manual clock with two scripted providers, run by the shared qasync
    loop of ``tests/ui/conftest.py`` (which also fails a test that leaves a task pending)."""
    clock = ManualClock()
    manager = ProviderManager(EngineConfig(breaker=BreakerConfig(jitter=0.0)), clock=clock)
    providers = {name: ScriptedProvider(id=name, display_name=name.title()) for name in "ab"}
    for scripted in providers.values():
        manager.add_provider(scripted, plugin="test")
    engine = Engine(qtbot, qloop, clock, manager, providers)
    yield engine
    for session in engine.sessions:
        engine.run(session.aclose())
    engine.run(manager.aclose())


@pytest.fixture
def refreshed(qtbot: QtBot, engine: Engine) -> Iterator[tuple[StatusPanel, StatusRefresher]]:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    titles: Mapping[str, str] = {}
    refresher = StatusRefresher(engine.manager, lambda: titles, panel, tick_ms=20)
    yield panel, refresher
    refresher.stop()
    assert not refresher.ticking and not refresher.pending


def test_a_flood_of_engine_events_costs_one_snapshot(qtbot: QtBot, engine: Engine) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    source = CountingSource(engine.manager)
    refresher = StatusRefresher(source, dict, panel)
    assert source.snapshots == 1  # the first picture, at once

    for limit in range(1, 1001):
        engine.manager.set_limit("a", limit)
    assert source.snapshots == 1 and refresher.pending
    qtbot.waitUntil(lambda: not refresher.pending)

    assert source.snapshots == 2  # one for the whole flood
    assert panel.providers_model.data(panel.providers_model.index(0, 2)) == "0 / 1000"
    assert not refresher.ticking  # nothing moves with time: no second refresh is coming
    refresher.stop()


def test_requests_in_flight_tick_while_they_run(
    qtbot: QtBot, engine: Engine, refreshed: tuple[StatusPanel, StatusRefresher]
) -> None:
    panel, refresher = refreshed
    model = panel.requests_model
    gate = asyncio.Event()
    engine.providers["a"].push(Script(chunks=("x" * 40, "y"), between=gate))
    session = engine.session("a")
    first = session.submit("first")
    session.submit("second")
    qtbot.waitUntil(lambda: column(model, RequestsModel.CHARS) == ["40", "0"])
    assert column(model, RequestsModel.PHASE) == ["streaming", "queued"]
    assert refresher.ticking

    engine.clock.advance(5)  # no engine event: only the tick can show it
    qtbot.waitUntil(lambda: column(model, RequestsModel.ELAPSED)[0] == "5 s")

    gate.set()
    engine.run(first.reply())
    qtbot.waitUntil(lambda: model.rowCount() == 0)
    assert panel.requests_label.text() == "No requests in flight"
    qtbot.waitUntil(lambda: not refresher.ticking)


def test_an_open_breaker_counts_down_to_half_open(
    qtbot: QtBot, engine: Engine, refreshed: tuple[StatusPanel, StatusRefresher]
) -> None:
    panel, refresher = refreshed
    model = panel.providers_model
    engine.providers["a"].push(*[Script(error=TransientError("HTTP 503"))] * 3)
    engine.providers["b"].push(Script(error=AuthError("HTTP 401: bad key")))
    session = engine.session("a", "b")
    engine.run(asyncio.gather(*(session.submit(str(i)) for i in range(3))))

    qtbot.waitUntil(lambda: column(model, ProvidersModel.STATE)[0] == "open · probe in 10 s")
    assert column(model, ProvidersModel.STATE)[1] == "needs attention"
    assert column(model, ProvidersModel.LAST_ERROR) == ["HTTP 503", "HTTP 401: bad key"]
    assert refresher.ticking
    engine.clock.advance(4)
    qtbot.waitUntil(lambda: column(model, ProvidersModel.STATE)[0] == "open · probe in 6 s")
    engine.clock.advance(6)
    qtbot.waitUntil(lambda: column(model, ProvidersModel.STATE)[0] == "half-open")
    qtbot.waitUntil(lambda: not refresher.ticking)

    panel.reset_requested.connect(engine.manager.reset)
    panel.providers_view.selectRow(1)
    with qtbot.waitSignal(panel.reset_requested):
        panel.reset_button.click()
    qtbot.waitUntil(lambda: column(model, ProvidersModel.STATE)[1] == "closed")


def test_the_refresher_lets_go_of_the_engine(qtbot: QtBot, engine: Engine) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    source = CountingSource(engine.manager)
    refresher = StatusRefresher(source, dict, panel)
    refresher.stop()
    engine.manager.set_limit("a", 2)
    assert not refresher.pending

    other = StatusPanel()
    StatusRefresher(source, dict, other)
    with qtbot.waitSignal(other.destroyed):
        other.deleteLater()
    engine.manager.set_limit("a", 3)  # would raise into the engine if still subscribed
    assert source.snapshots == 2
