"""The Settings dialog: editing, validation beside each field, the keychain, "Test connection"."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from pydantic import BaseModel, ConfigDict, Field, field_validator
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QScrollArea,
    QWidget,
)
from pytestqt.qtbot import QtBot

from valis_desktop.api import ConnectionCheck, SettingsForm
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.settings import EngineSettings, ProviderSettings, Settings
from valis_desktop.testing import ScriptedProvider
from valis_desktop.ui.instance_editor import InstanceEditor
from valis_desktop.ui.model_form import ModelForm
from valis_desktop.ui.settings_dialog import SettingsDialog

KEY = "sk-test-4f9a1c2e7b"
INSTALLED = [("local", "Local model"), ("fallback", "Canned reply")]


class MemoryKeyring(KeyringBackend):
    """A keychain that lives in a dict. Its required argument keeps keyring's own backend
    discovery (which tries every backend class without arguments) from ever choosing it."""

    priority = 1

    def __init__(self, passwords: dict[tuple[str, str], str]) -> None:
        super().__init__()
        self.passwords = passwords

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


class Endpoint(BaseModel):
    """A sample plugin's instance."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", title="ID")
    name: str = Field("", description="Shown in the chain and the status panel.")
    base_url: str = "https://api.example.com/v1"
    model: str = Field(min_length=1)
    limit: int = Field(4, ge=1, le=256)
    api_key_env: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// address")
        return value


class FakeTester:
    """A connection test that waits for ``gate`` (when set) and lists two models."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.calls: list[tuple[BaseModel, str | None]] = []

    async def __call__(self, instance: BaseModel, secret: str | None) -> ConnectionCheck:
        self.calls.append((instance, secret))
        if self.gate is not None:
            await self.gate.wait()
        return ConnectionCheck(ok=True, message="Connected in 0.1 s.", models=("alpha", "beta"))


@pytest.fixture
def tester() -> FakeTester:
    return FakeTester()


@pytest.fixture
def form(tester: FakeTester) -> SettingsForm:
    return SettingsForm(
        "sample",
        "Sample endpoints",
        Endpoint,
        description="Any server that speaks the sample protocol.",
        secret_field="api_key",
        test_connection=tester,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "settings.toml"


@pytest.fixture
def open_dialog(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, form: SettingsForm, path: Path
) -> Callable[[], SettingsDialog]:
    def open_() -> SettingsDialog:
        dialog = SettingsDialog([form], providers=INSTALLED, path=path)
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return open_


@pytest.fixture
def memory_keychain() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring({})
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keychain() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def retype(qtbot: QtBot, widget: QWidget, text: str) -> None:
    line = widget.lineEdit() if isinstance(widget, QComboBox) else widget
    assert isinstance(line, QLineEdit)
    line.clear()
    qtbot.keyClicks(line, text)


def alt_u(dialog: SettingsDialog) -> None:
    # Through the window, as the platform would deliver it: shortcuts see it there.
    QTest.keyClick(dialog.windowHandle(), Qt.Key.Key_U, Qt.KeyboardModifier.AltModifier)


def add_instance(qtbot: QtBot, dialog: SettingsDialog, **fields: str) -> InstanceEditor:
    group = dialog.plugins[0]
    qtbot.mouseClick(group._buttons[0], Qt.MouseButton.LeftButton)
    editor = group.editor
    assert editor is not None
    for name, text in fields.items():
        retype(qtbot, editor.fields.editor(name), text)
    return editor


def test_saved_limit_and_chain_are_written_and_shown_again(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    dialog = open_dialog()
    retype(qtbot, dialog.engine_form.editor("global_limit"), "7")
    dialog.chain.list.setCurrentRow(1)
    alt_u(dialog)  # "Move up", by its mnemonic
    qtbot.waitUntil(lambda: dialog.chain.chain() == ["fallback", "local"])
    with qtbot.waitSignal(dialog.saved) as saved:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    assert tomllib.loads(path.read_text()) == {
        "engine": {"global_limit": 7, "default_chain": ["fallback", "local"]}
    }
    assert saved.args[0].engine.global_limit == 7
    again = open_dialog()
    line = again.engine_form.editor("global_limit")
    assert isinstance(line, QLineEdit) and line.text() == "7"
    assert again.chain.chain() == ["fallback", "local"]


def test_invalid_values_are_shown_beside_their_fields_and_nothing_is_written(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    path.write_text("[engine]\nglobal_limit = 5\n")
    before = path.read_bytes()
    dialog = open_dialog()
    retype(qtbot, dialog.engine_form.editor("global_limit"), "0")

    assert dialog.engine_form.error_text("global_limit") == "Must be at least 1"
    assert not dialog.save_button.isEnabled()
    assert not dialog.save()
    assert dialog.focusWidget() is dialog.engine_form.editor("global_limit")

    editor = add_instance(qtbot, dialog, model="m", base_url="ftp://example.com")
    assert editor.fields.error_text("base_url") == "Must be an http:// or https:// address"
    assert editor.fields.error_text("id") == "Required"
    retype(qtbot, editor.fields.editor("id"), "Not An Id")
    assert editor.fields.error_text("id").startswith("Use lower-case letters")
    retype(qtbot, editor.fields.editor("id"), "local")
    assert editor.fields.error_text("id") == "Another provider has the id “local”"
    assert not editor.buttons.button(editor.buttons.StandardButton.Ok).isEnabled()
    editor.reject()
    assert path.read_bytes() == before


def test_a_file_with_an_invalid_field_is_shown_as_it_is_and_kept_until_saved(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    path.write_text(
        '[engine]\nglobal_limit = 0\ngap_timeout = 30\ndefault_chain = ["fallback"]\n\n'
        "[providers.local]\nlimit = 2\n"
    )
    before = path.read_bytes()
    dialog = open_dialog()

    assert "engine.global_limit" in dialog.banner.text() and dialog.banner.isVisibleTo(dialog)
    assert dialog.engine_form.error_text("global_limit") == "Must be at least 1"
    gap = dialog.engine_form.editor("gap_timeout")
    assert isinstance(gap, QLineEdit) and gap.text() == "30"
    assert dialog.chain.chain() == ["fallback"]
    assert dialog.limits.read()[0] == {"local": {"limit": 2}}
    assert path.read_bytes() == before

    retype(qtbot, dialog.engine_form.editor("global_limit"), "3")
    assert dialog.save()
    assert tomllib.loads(path.read_text()) == {
        "engine": {"global_limit": 3, "gap_timeout": 30, "default_chain": ["fallback"]},
        "providers": {"local": {"limit": 2}},
    }


def test_an_api_key_goes_to_the_keychain_and_never_to_the_file_or_the_logs(
    qtbot: QtBot,
    open_dialog: Callable[[], SettingsDialog],
    path: Path,
    memory_keychain: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dialog = open_dialog()
    editor = add_instance(qtbot, dialog, id="groq", model="llama")
    qtbot.keyClicks(editor.key, KEY)
    qtbot.mouseClick(
        editor.buttons.button(editor.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )
    assert dialog.plugins[0].list.item(0).text() == "groq · llama"
    assert memory_keychain.passwords == {}  # nothing is stored before Save
    assert dialog.save()

    assert memory_keychain.passwords == {("valis-desktop", "sample:groq"): KEY}
    text = path.read_text()
    assert KEY not in text
    assert tomllib.loads(text) == {
        "plugins": {"sample": {"instances": [{"id": "groq", "model": "llama"}]}}
    }
    assert not [record for record in caplog.records if KEY in record.getMessage()]

    again = open_dialog()
    again.plugins[0].list.setCurrentRow(0)
    again.plugins[0].edit()
    renaming = again.plugins[0].editor
    assert renaming is not None
    assert renaming.stored.isVisible() and not renaming.key.isVisible()
    retype(qtbot, renaming.fields.editor("id"), "groq-eu")
    renaming.accept()
    assert again.save()
    assert memory_keychain.passwords == {("valis-desktop", "sample:groq-eu"): KEY}


def test_keys_follow_their_instances_when_duplicated_removed_or_dropped(
    qtbot: QtBot,
    open_dialog: Callable[[], SettingsDialog],
    path: Path,
    memory_keychain: MemoryKeyring,
) -> None:
    path.write_text(
        '[[plugins.sample.instances]]\nid = "a"\nmodel = "m"\n\n'
        '[[plugins.sample.instances]]\nid = "b"\nmodel = "m"\n'
    )
    memory_keychain.passwords.update(
        {("valis-desktop", "sample:a"): "key-a", ("valis-desktop", "sample:b"): "key-b"}
    )
    dialog = open_dialog()
    group = dialog.plugins[0]
    group.list.setCurrentRow(0)
    group.duplicate()
    assert group.editor is not None
    assert group.editor.fields.read()[0]["id"] == "a-copy"
    group.editor.accept()
    group.list.setCurrentRow(0)
    group.edit()
    assert group.editor is not None
    qtbot.mouseClick(group.editor.remove, Qt.MouseButton.LeftButton)
    assert group.editor.key_note.text() == "The stored key is removed when you save."
    group.editor.accept()
    group.list.setCurrentRow(1)
    group.remove()
    assert [group.list.item(i).text() for i in range(group.list.count())] == ["a · m", "a-copy · m"]
    assert memory_keychain.passwords[("valis-desktop", "sample:b")] == "key-b"  # until Save
    assert dialog.save()

    assert memory_keychain.passwords == {("valis-desktop", "sample:a-copy"): "key-a"}


def test_without_a_keychain_the_key_field_is_disabled_and_no_key_is_written(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path, no_keychain: None
) -> None:
    dialog = open_dialog()
    editor = add_instance(qtbot, dialog, id="groq", model="llama", api_key_env="GROQ_KEY")

    assert not editor.key.isEnabled()
    assert "no keychain" in editor.key_note.text()
    assert "“API key environment variable”" in editor.key_note.text()
    editor.key.setText(KEY)  # what no user can do: the field is disabled
    editor.accept()
    assert dialog.save()
    text = path.read_text()
    assert KEY not in text
    assert tomllib.loads(text)["plugins"]["sample"]["instances"] == [
        {"id": "groq", "model": "llama", "api_key_env": "GROQ_KEY"}
    ]


def test_connection_test_shows_its_result_and_offers_the_models(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], tester: FakeTester
) -> None:
    tester.gate = asyncio.Event()
    dialog = open_dialog()
    editor = add_instance(qtbot, dialog, id="groq", model="llama")
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    assert editor.outcome.text() == "Testing the connection…"
    assert editor.isVisible()  # the dialog stays usable meanwhile
    tester.gate.set()
    qtbot.waitUntil(lambda: "Connected" in editor.outcome.text())

    assert editor.outcome.text().startswith("✓ Connected in 0.1 s.")
    model = editor.fields.editor("model")
    assert isinstance(model, QComboBox)
    assert [model.itemText(i) for i in range(model.count())] == ["alpha", "beta"]
    assert model.currentText() == "llama"
    assert tester.calls[0][0] == Endpoint(id="groq", model="llama")


def test_closing_the_dialog_during_a_connection_test_cancels_it(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], tester: FakeTester
) -> None:
    tester.gate = asyncio.Event()
    dialog = open_dialog()
    editor = add_instance(qtbot, dialog, id="groq", model="llama")
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    task = editor.test
    assert task is not None
    qtbot.waitUntil(lambda: len(tester.calls) == 1)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)

    assert not dialog.isVisible() and not editor.isVisible()
    qtbot.waitUntil(task.done)
    assert task.cancelled()


def test_every_control_has_an_accessible_name_and_nothing_is_clipped(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    path.write_text(
        '[[plugins.sample.instances]]\nid = "groq"\nname = "Groq"\nmodel = "llama"\n'
        "[providers.local]\nlimit = 2\n"
    )
    dialog = open_dialog()
    dialog.plugins[0].list.setCurrentRow(0)
    dialog.plugins[0].edit()
    assert dialog.plugins[0].editor is not None
    editor: QWidget = dialog.plugins[0].editor
    for window in (dialog, editor):
        controls = [
            control
            for kind in (QLineEdit, QComboBox, QListWidget, QPlainTextEdit)
            for control in window.findChildren(kind)
        ]
        unnamed = [c for c in controls if not c.accessibleName() and c.parent() is not None]
        assert not [c for c in unnamed if not isinstance(c.parent(), QComboBox)]
        buttons = window.findChildren(QAbstractButton)
        assert all(b.accessibleName() or b.text() for b in buttons)
    editor.close()
    for width, height in ((1024, 700), (900, 640)):
        dialog.resize(width, height)
        for index in range(dialog.tabs.count()):
            dialog.tabs.setCurrentIndex(index)
            area = dialog.tabs.currentWidget()
            assert isinstance(area, QScrollArea)
            QApplication.processEvents()  # let the layouts settle: no timer, no sleep
            assert not area.horizontalScrollBar().isVisible()


def focus_order(window: QWidget) -> list[QWidget]:
    """The widgets Tab visits in ``window``, in order."""
    order: list[QWidget] = []
    widget = window.nextInFocusChain()
    while widget is not window:
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.isVisibleTo(window):
            order.append(widget)
        widget = widget.nextInFocusChain()
    return order


def test_tab_follows_the_layout(
    qtbot: QtBot, open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    path.write_text("[providers.local]\nlimit = 2\n")
    dialog = open_dialog()
    order = focus_order(dialog)
    wanted = [
        dialog.chain.list,
        dialog.limits._rows[0][0],
        dialog.limits._add,
        dialog.engine_form.editor("global_limit"),
        dialog.breaker_form.editor("failure_threshold"),
        dialog.save_button,
    ]
    assert [w for w in order if w in wanted] == wanted  # down the left column, then the right

    editor = add_instance(qtbot, dialog)
    names = [w.accessibleName() or w.text() for w in focus_order(editor)]  # type: ignore[attr-defined]
    assert names == [
        "ID",
        "Name",
        "Base URL",
        "Model",
        "Model",  # the list's own text field
        "Limit",
        "API key environment variable",
        "API key",
        "Test connection",
        "OK",
        "Cancel",
    ]
    editor.reject()


def test_screenshots_of_both_pages(
    qtbot: QtBot,
    open_dialog: Callable[[], SettingsDialog],
    path: Path,
    memory_keychain: MemoryKeyring,
) -> None:
    memory_keychain.passwords[("valis-desktop", "sample:groq")] = KEY
    path.write_text(
        '[engine]\nglobal_limit = 0\ndefault_chain = ["groq", "local", "fallback"]\n\n'
        "[providers.local]\nlimit = 1\n\n"
        '[[plugins.sample.instances]]\nid = "groq"\nname = "Groq"\nmodel = "llama-3.3-70b"\n\n'
        '[[plugins.sample.instances]]\nid = "ollama"\nbase_url = "http://127.0.0.1:11434/v1"\n'
        'model = "llama3.2"\n\n[[plugins.sample.instances]]\nid = "broken"\n'
    )
    dialog = open_dialog()
    dialog.resize(900, 640)
    for index, name in enumerate(("general", "providers")):
        dialog.tabs.setCurrentIndex(index)
        QApplication.processEvents()  # let the layouts settle: no timer, no sleep
        assert dialog.grab().save(f"/tmp/settings_{name}.png")
    dialog.plugins[0].list.setCurrentRow(0)
    dialog.plugins[0].edit()
    assert dialog.plugins[0].editor is not None
    QApplication.processEvents()
    assert dialog.plugins[0].editor.grab().save("/tmp/settings_instance.png")
    dialog.plugins[0].editor.reject()
    editor = add_instance(qtbot, dialog, id="Groq", base_url="ftp://example.com")
    QApplication.processEvents()
    assert editor.grab().save("/tmp/settings_instance_errors.png")


def test_saved_settings_apply_to_the_running_engine(qloop: asyncio.AbstractEventLoop) -> None:
    manager = ProviderManager()
    manager.add_provider(ScriptedProvider(id="p", default_concurrency=4), plugin="test-p")
    manager.add_provider(FallbackProvider(), plugin="fallback")
    engine = Engine(PluginHost(safe_mode=True), manager, {}, Settings())
    session = engine.open_session()
    settings = Settings(
        engine=EngineSettings(global_limit=3, gap_timeout=5, queue_limit=2, default_chain=["p"]),
        providers={"p": ProviderSettings(limit=1)},
    )
    engine.apply_settings(settings)

    snapshot = manager.snapshot()
    assert snapshot.global_limit == 3
    assert {p.id: p.limit for p in snapshot.providers}["p"] == 1
    assert manager.config.gap_timeout == 5
    assert session.max_queue == 2
    assert engine.default_chain == ("p",)
    engine.apply_settings(Settings())
    assert {p.id: p.limit for p in manager.snapshot().providers}["p"] == 4


def test_a_failing_connection_test_shows_why_without_the_key(
    qtbot: QtBot,
    open_dialog: Callable[[], SettingsDialog],
    form: SettingsForm,
    memory_keychain: MemoryKeyring,
) -> None:
    async def refuse(instance: BaseModel, secret: str | None) -> ConnectionCheck:
        raise RuntimeError(f"server said: bad key {secret}")

    form.test_connection = refuse
    dialog = open_dialog()
    editor = add_instance(qtbot, dialog, id="groq", model="llama")
    qtbot.keyClicks(editor.key, KEY)
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.outcome.text().startswith("✗"))

    assert editor.outcome.text() == "✗ The test failed: RuntimeError: server said: bad key ••••"
    assert editor.test is None and editor.test_button.text() == "&Test connection"


class Nested(BaseModel):
    connect: int = Field(5, ge=1)


class Kinds(BaseModel):
    id: str
    mode: Literal["fast", "slow"] = "fast"
    verbose: bool = False
    tags: list[str] = []
    headers: dict[str, str] = {}
    ratio: float | None = None
    timeouts: Nested = Nested()


def test_the_model_form_edits_each_kind_of_field(qtbot: QtBot) -> None:
    form = ModelForm(Kinds, {"id": "x", "tags": ["a"], "timeouts": {"connect": 2}})
    qtbot.addWidget(form)
    assert form.read() == ({"id": "x", "tags": ["a"], "timeouts": {"connect": 2}}, [])

    mode = form.editor("mode")
    assert isinstance(mode, QComboBox)
    mode.setCurrentIndex(1)
    verbose = form.editor("verbose")
    assert isinstance(verbose, QCheckBox)
    verbose.setChecked(True)
    retype(qtbot, form.editor("tags"), "a, b ,, c")
    headers = form.editor("headers")
    assert isinstance(headers, QPlainTextEdit)
    headers.setPlainText("X-Team: blue\n\nX-Trace: on")
    retype(qtbot, form.editor("ratio"), "0.5")
    retype(qtbot, form.editor("timeouts.connect"), "0")
    table, errors = form.read()

    assert errors == []
    assert table == {
        "id": "x",
        "mode": "slow",
        "verbose": True,
        "tags": ["a", "b", "c"],
        "headers": {"X-Team": "blue", "X-Trace": "on"},
        "ratio": 0.5,
        "timeouts": {"connect": 0},
    }
    assert form.validate() is None
    assert form.error_text("timeouts.connect") == "Must be at least 1"
    headers.setPlainText("no colon here")
    retype(qtbot, form.editor("ratio"), "half")
    assert form.validate() is None
    assert form.error_text("headers") == "Line 1: write it as  name: value"
    assert form.error_text("ratio") == "Enter a number, such as 2.5"


def test_saving_without_changes_keeps_the_file_and_its_comments(
    open_dialog: Callable[[], SettingsDialog], path: Path
) -> None:
    path.write_text("# my limits\n[engine]\nglobal_limit = 4 # two GPUs\n")
    before = path.read_bytes()
    dialog = open_dialog()
    assert dialog.save()
    assert path.read_bytes() == before
