"""The Plugins dialog: states and details, and enabling or disabling a plugin without a restart."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost, PluginState
from valis_desktop.core.settings import PluginsSettings, Settings, load_settings
from valis_desktop.ui.plugins_dialog import PluginsDialog
from valis_desktop.ui.status_panel import StatusPanel

SAMPLES = "tests.core.sample_plugins"


def entry_point(name: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{SAMPLES}.{name}", group=ENTRY_POINT_GROUP)


@pytest.fixture
def engine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Engine:
    disabled = ["good"]
    host = PluginHost(
        entry_points=[entry_point(n) for n in ("good", "broken_import", "configured")],
        disabled=disabled,
    )
    settings = Settings(plugins=PluginsSettings(disabled=disabled))
    started = Engine.start(
        settings=settings,
        host=host,
        library=PersonaLibrary(tmp_path / "personas"),
        settings_path=tmp_path / "settings.toml",
    )
    assert [r.getMessage() for r in caplog.records] == [
        "plugin 'broken_import' quarantined: "
        "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"
    ]
    caplog.clear()
    return started


@pytest.fixture
def dialog(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, engine: Engine) -> PluginsDialog:
    dialog = PluginsDialog(engine)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def rows(dialog: PluginsDialog) -> list[str]:
    return [dialog.plugin_list.item(i).text() for i in range(dialog.plugin_list.count())]


def test_lists_the_plugins_with_their_states(dialog: PluginsDialog) -> None:
    assert rows(dialog) == [
        "fallback (built-in) — loaded",
        "personas (built-in) — loaded",
        "good — disabled",
        "broken_import — quarantined: "
        "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'",
        "configured — loaded",
    ]


def test_a_quarantined_plugin_shows_its_traceback(dialog: PluginsDialog) -> None:
    dialog.select("broken_import")

    assert dialog.state_label.text().startswith("quarantined: ModuleNotFoundError")
    assert dialog.traceback_view.isVisible() and dialog.traceback_view.isReadOnly()
    text = dialog.traceback_view.toPlainText()
    assert text.startswith("Traceback (most recent call last):")
    assert "import a_module_that_does_not_exist" in text
    fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    assert dialog.traceback_view.font().family() == fixed.family()
    assert dialog.toggle_button.isVisible() and dialog.toggle_button.text() == "&Disable"

    dialog.select("configured")
    assert not dialog.traceback_view.isVisible()
    assert dialog.providers_label.text() == "none"


def test_builtins_have_no_toggle(dialog: PluginsDialog) -> None:
    dialog.select("fallback")
    assert not dialog.toggle_button.isVisible()
    assert dialog.distribution_label.text() == "built into Valis Desktop"
    assert dialog.providers_label.text() == "fallback"
    assert "cannot be disabled" in dialog.note_label.text()


def test_enabling_makes_the_provider_appear_without_a_restart(
    qtbot: QtBot, dialog: PluginsDialog, engine: Engine, tmp_path: Path
) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    panel.update_snapshot(engine.manager.snapshot(), {})
    dialog.changed.connect(lambda: panel.update_snapshot(engine.manager.snapshot(), {}))
    assert "good" not in engine.manager.provider_ids
    assert "good" not in panel_ids(panel)

    dialog.select("good")
    assert dialog.toggle_button.text() == "&Enable"
    with qtbot.waitSignal(dialog.changed, timeout=1000):
        qtbot.mouseClick(dialog.toggle_button, Qt.MouseButton.LeftButton)

    assert "good" in engine.manager.provider_ids
    assert "good" in panel_ids(panel)
    assert engine.host.records["good"].state is PluginState.LOADED
    assert load_settings(tmp_path / "settings.toml").settings.plugins.disabled == []
    assert dialog.current_name() == "good"
    assert dialog.providers_label.text() == "good"
    assert "good — loaded" in rows(dialog)

    with qtbot.waitSignal(dialog.changed, timeout=1000):
        qtbot.mouseClick(dialog.toggle_button, Qt.MouseButton.LeftButton)

    assert "good" not in engine.manager.provider_ids
    assert "good" not in panel_ids(panel)
    assert "restart to finish removing" in dialog.note_label.text()
    assert load_settings(tmp_path / "settings.toml").settings.plugins.disabled == ["good"]


def test_keyboard_reaches_the_toggle(qtbot: QtBot, dialog: PluginsDialog, engine: Engine) -> None:
    dialog.plugin_list.setFocus()
    qtbot.keyClick(dialog.plugin_list, Qt.Key.Key_End)
    qtbot.keyClick(dialog.plugin_list, Qt.Key.Key_Up)
    qtbot.keyClick(dialog.plugin_list, Qt.Key.Key_Up)
    assert dialog.current_name() == "good"
    with qtbot.waitSignal(dialog.changed, timeout=1000):
        qtbot.keyClick(dialog, Qt.Key.Key_E, Qt.KeyboardModifier.AltModifier)
    assert "good" in engine.manager.provider_ids
    assert dialog.plugin_list.accessibleName() == "Plugins"
    assert dialog.toggle_button.accessibleName() == "Disable plugin good"


def test_nothing_is_clipped_at_1024_by_700(qtbot: QtBot, dialog: PluginsDialog) -> None:
    assert dialog.width() <= 1024 and dialog.height() <= 700
    dialog.select("broken_import")
    layout = dialog.layout()
    assert layout is not None
    layout.activate()
    for widget in (
        dialog.plugin_list,
        dialog.toggle_button,
        dialog.state_label,
        dialog.traceback_view,
        dialog.button_box,
    ):
        assert widget.isVisible()
        assert widget.width() >= widget.minimumSizeHint().width(), widget
        assert widget.height() >= widget.minimumSizeHint().height(), widget
        assert_inside(widget, dialog)


def assert_inside(widget: QWidget, dialog: PluginsDialog) -> None:
    top_left = widget.mapTo(dialog, widget.rect().topLeft())
    bottom_right = widget.mapTo(dialog, widget.rect().bottomRight())
    assert dialog.rect().contains(top_left) and dialog.rect().contains(bottom_right), widget


def panel_ids(panel: StatusPanel) -> list[str]:
    model = panel.providers_model
    return [
        status.id
        for row in range(model.rowCount())
        if (status := model.provider_at(row)) is not None
    ]
