"""The Plugins dialog: states and details, and enabling or disabling a plugin without a restart."""

from __future__ import annotations

import asyncio
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugin_installer import Installer
from valis_desktop.core.plugins import PluginHost, PluginState
from valis_desktop.core.settings import PluginsSettings, Settings, load_settings
from valis_desktop.ui.plugin_install import PipRunDialog
from valis_desktop.ui.plugins_dialog import PluginsDialog
from valis_desktop.ui.status_panel import StatusPanel

from ..sample_dists import build_plugin_wheel

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


# Installing and removing with real pip, into a folder of this environment (pip removes only
# what lies inside the running environment), which the tests put on sys.path.

WHEEL_PREFIX = "wheel-"


def wheel_plugins() -> list[EntryPoint]:
    return [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name.startswith(WHEEL_PREFIX)]


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for left in Path(sys.prefix).glob("valis-test-site-*"):  # from an interrupted run
        shutil.rmtree(left, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix="valis-test-site-", dir=sys.prefix))
    monkeypatch.syspath_prepend(str(root))
    modules = set(sys.modules)
    yield root
    shutil.rmtree(root, ignore_errors=True)
    for name in set(sys.modules) - modules:
        if name.startswith("wheel_"):
            del sys.modules[name]


@pytest.fixture
def pip_dialog_for(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, site: Path
) -> Iterator[tuple[PluginsDialog, Engine]]:
    engine = Engine.start(
        host=PluginHost(entry_points=wheel_plugins),
        library=PersonaLibrary(tmp_path / "personas"),
        settings_path=tmp_path / "settings.toml",
    )
    installer = Installer(
        install_args=("--target", str(site), "--no-deps", "--no-index"),
        environment={"PYTHONPATH": str(site)},
    )
    dialog = PluginsDialog(engine, installer=installer)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    yield dialog, engine
    closing = asyncio.ensure_future(dialog.aclose())
    qtbot.waitUntil(closing.done)


def hanging_pip(folder: Path, *, says: str = "") -> Installer:
    """A stand-in for a pip that takes long (a big download): it prints ``says``, then waits
    until it is killed."""
    script = folder / "hanging-pip"
    script.write_text(
        f"#!{sys.executable}\nimport time\nprint({says!r}, flush=True)\ntime.sleep(3600)\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Installer(python=str(script))


def run_pip(qtbot: QtBot, pip: PipRunDialog, start: object) -> bool:
    with qtbot.waitSignal(pip.ended, timeout=60_000) as ended:
        start()  # type: ignore[operator]
    return bool(ended.args[0])


def install_from_dialog(qtbot: QtBot, dialog: PluginsDialog, spec: str) -> PipRunDialog:
    qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    pip = dialog.pip_dialog
    assert pip is not None and pip.isVisible()
    qtbot.waitExposed(pip)
    assert not pip.run_button.isEnabled()  # nothing named yet
    qtbot.keyClicks(pip.spec_edit, spec)
    assert pip.run_button.isEnabled()
    return pip


def test_installing_a_plugin_makes_its_provider_usable_without_a_restart(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, engine = pip_dialog_for
    panel = StatusPanel()
    qtbot.addWidget(panel)
    dialog.changed.connect(lambda: panel.update_snapshot(engine.manager.snapshot(), {}))
    wheel = build_plugin_wheel(tmp_path, "wheel-sample")

    pip = install_from_dialog(qtbot, dialog, str(wheel))
    ok = run_pip(qtbot, pip, lambda: qtbot.keyClick(pip.spec_edit, Qt.Key.Key_Return))

    assert ok, pip.output.toPlainText()
    assert "Successfully installed wheel-sample-1.0" in pip.output.toPlainText()
    assert pip.status_label.text() == "✓ wheel-sample 1.0 is ready — providers: wheel-sample."
    assert pip.close_button.isVisible() and not pip.cancel_button.isVisible()
    assert pip.close_button.hasFocus()
    assert "wheel-sample" in panel_ids(panel)
    assert dialog.current_name() == "wheel-sample"
    assert dialog.description_label.text() == "A sample plugin."
    assert 'href="https://example.org/sample"' in dialog.homepage_label.text()
    assert dialog.hooks_label.text() == "register_personas, register_providers"
    assert dialog.uninstall_button.isVisible()

    session = engine.open_session(chain=("wheel-sample", "fallback"))
    request = session.submit("hello")
    qtbot.waitUntil(request.done, timeout=5000)
    reply = request.result()
    assert (reply.provider_id, reply.text) == ("wheel-sample", "1.0 says: hello")
    closing = asyncio.ensure_future(engine.aclose())
    qtbot.waitUntil(closing.done)


def test_uninstalling_asks_then_removes_and_says_a_restart_finishes_it(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path, site: Path
) -> None:
    dialog, engine = pip_dialog_for
    pip = install_from_dialog(qtbot, dialog, str(build_plugin_wheel(tmp_path, "wheel-gone")))
    assert run_pip(qtbot, pip, pip.start), pip.output.toPlainText()
    pip.reject()
    assert "wheel-gone" in engine.manager.provider_ids

    dialog.select("wheel-gone")
    qtbot.mouseClick(dialog.uninstall_button, Qt.MouseButton.LeftButton)
    box = dialog.confirmation
    assert box is not None and box.isVisible()
    assert box.text() == "Uninstall wheel-gone 1.0?"
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert dialog.pip_dialog is pip  # nothing ran
    assert "wheel-gone" in engine.manager.provider_ids

    qtbot.mouseClick(dialog.uninstall_button, Qt.MouseButton.LeftButton)
    box = dialog.confirmation
    [yes] = [
        b for b in box.buttons() if box.buttonRole(b) is QMessageBox.ButtonRole.DestructiveRole
    ]
    with qtbot.waitSignal(dialog.changed, timeout=60_000):
        qtbot.mouseClick(yes, Qt.MouseButton.LeftButton)

    removal = dialog.pip_dialog
    assert removal is not None and removal is not pip
    assert "Successfully uninstalled wheel-gone-1.0" in removal.output.toPlainText()
    assert "restart to finish removing" in removal.status_label.text()
    assert "wheel-gone" not in engine.manager.provider_ids
    assert engine.host.records["wheel-gone"].state is PluginState.UNINSTALLED
    assert "wheel-gone 1.0 — uninstalled (restart to finish)" in rows(dialog)
    assert "restart to finish removing" in dialog.note_label.text()
    assert not dialog.uninstall_button.isVisible() and not dialog.toggle_button.isVisible()
    assert not any(site.glob("wheel_gone*"))


def test_a_failed_install_shows_pips_reason_and_changes_nothing(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, engine = pip_dialog_for

    def plugins() -> dict[str, tuple[object, ...]]:
        return {
            name: (r.state, r.version, tuple(r.providers), r.restart_note)
            for name, r in engine.host.records.items()
        }

    before = plugins()
    providers = engine.manager.provider_ids
    pip = install_from_dialog(qtbot, dialog, str(tmp_path / "no-such-plugin.whl"))

    assert not run_pip(qtbot, pip, pip.start)

    status = pip.status_label.text()
    assert status.startswith("✗ pip failed (exit status 1); nothing was changed.")
    assert "ERROR: Invalid wheel filename (wrong number of parts): 'no-such-plugin'" in status
    assert plugins() == before and engine.manager.provider_ids == providers
    assert pip.run_button.isEnabled() and pip.spec_edit.isEnabled()  # fix it and try again
    assert pip.spec_edit.hasFocus()


def test_cancelling_an_install_stops_pip_and_keeps_the_window_responsive(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, _engine = pip_dialog_for
    dialog.installer = hanging_pip(tmp_path, says="Collecting big-plugin")
    pip = install_from_dialog(qtbot, dialog, "big-plugin")
    pip.start()
    qtbot.waitUntil(lambda: "Collecting big-plugin" in pip.output.toPlainText(), timeout=10_000)
    assert pip.running and pip.cancel_button.isVisible() and not pip.close_button.isVisible()
    assert not pip.spec_edit.isEnabled()

    # Escape stops pip but keeps the dialog, so the output can still be read.
    with qtbot.waitSignal(pip.ended, timeout=10_000) as ended:
        qtbot.keyClick(pip, Qt.Key.Key_Escape)

    assert ended.args == [False]
    assert pip.isVisible() and not pip.running
    assert pip.status_label.text() == "✗ Cancelled: pip was stopped."
    assert "Collecting big-plugin" in pip.output.toPlainText()
    qtbot.keyClick(pip, Qt.Key.Key_Escape)
    assert not pip.isVisible()


def test_closing_the_install_window_while_pip_runs_stops_it_and_says_so(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, _engine = pip_dialog_for
    dialog.installer = hanging_pip(tmp_path)
    pip = install_from_dialog(qtbot, dialog, "big-plugin")
    pip.start()

    with qtbot.waitSignal(pip.ended, timeout=10_000):
        pip.close()  # the window's close button

    assert pip.isVisible() and pip.status_label.text() == "✗ Cancelled: pip was stopped."
    pip.close()
    assert not pip.isVisible()


def test_a_chosen_path_with_spaces_stays_one_thing_to_install(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine]
) -> None:
    dialog, _engine = pip_dialog_for
    qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    pip = dialog.pip_dialog
    assert pip is not None

    pip._chosen("/home/me/My Plugins/valis_x-1.0-py3-none-any.whl")  # from File…

    assert pip.specs() == ["/home/me/My Plugins/valis_x-1.0-py3-none-any.whl"]
    pip.spec_edit.setText("valis-a valis-b")
    assert pip.specs() == ["valis-a", "valis-b"]
    pip.spec_edit.setText('"unbalanced')
    assert pip.specs() == [] and not pip.run_button.isEnabled()
    pip.reject()


def test_closing_the_application_stops_a_running_install(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, _engine = pip_dialog_for
    dialog.installer = hanging_pip(tmp_path)
    pip = install_from_dialog(qtbot, dialog, "big-plugin")
    pip.start()
    task = pip.task
    assert task is not None

    closing = asyncio.ensure_future(dialog.aclose())
    qtbot.waitUntil(closing.done, timeout=10_000)

    assert task.cancelled() and not pip.running


def test_the_install_dialog_fits_and_reads_well(
    qtbot: QtBot, pip_dialog_for: tuple[PluginsDialog, Engine], tmp_path: Path
) -> None:
    dialog, _engine = pip_dialog_for
    pip = install_from_dialog(qtbot, dialog, str(build_plugin_wheel(tmp_path, "wheel-look")))
    assert run_pip(qtbot, pip, pip.start)
    assert pip.width() <= 1024 and pip.height() <= 700
    for widget in (pip.spec_edit, pip.file_button, pip.folder_button, pip.output, pip.buttons):
        assert widget.isVisible()
        assert widget.width() >= widget.minimumSizeHint().width(), widget
    assert pip.grab().save(str(Path(tempfile.gettempdir()) / "plugins_install.png"))
    pip.reject()
    assert dialog.grab().save(str(Path(tempfile.gettempdir()) / "plugins_dialog.png"))
