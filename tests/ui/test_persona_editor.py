"""The persona editor: validation beside the fields, saving, duplicating, read-only personas,
and the chat tab's picker refreshed afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from valis_desktop.api import GenerationParams, Persona
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.settings import EngineSettings, Settings
from valis_desktop.ui.chat_tab import ChatTab
from valis_desktop.ui.persona_editor import ID_HINT, PersonaEditor


@pytest.fixture
def library(tmp_path: Path) -> PersonaLibrary:
    library = PersonaLibrary(tmp_path / "personas")
    library.load()
    return library


@pytest.fixture
def editor(qtbot: QtBot, library: PersonaLibrary) -> PersonaEditor:
    editor = PersonaEditor(library)
    qtbot.addWidget(editor)
    editor.resize(1024, 700)
    editor.show()
    qtbot.waitExposed(editor)
    return editor


def user_files(library: PersonaLibrary) -> list[Path]:
    return sorted(library.user_dir.glob("*.toml")) if library.user_dir.is_dir() else []


def fill(qtbot: QtBot, editor: PersonaEditor, **fields: str) -> None:
    for name, text in fields.items():
        widget = editor.editors[name]
        widget.clear()
        qtbot.keyClicks(widget, text)


def test_bad_fields_are_shown_at_the_field_and_nothing_is_written(
    qtbot: QtBot, editor: PersonaEditor, library: PersonaLibrary
) -> None:
    before = dict(library.personas)
    qtbot.mouseClick(editor.new_button, Qt.MouseButton.LeftButton)
    fill(qtbot, editor, id="Bad Id", temperature="hot", colour="blue")

    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    assert editor.errors["name"].isVisible()
    assert editor.errors["name"].text() == "Required"
    assert editor.errors["id"].text() == ID_HINT
    assert "number" in editor.errors["temperature"].text()
    assert "#rrggbb" in editor.errors["colour"].text()
    assert not editor.errors["description"].isVisible()
    assert editor.name_edit.hasFocus()  # the first field with a problem
    assert user_files(library) == []
    assert library.personas == before

    fill(qtbot, editor, name="Mine", id="assistant", temperature="", colour="")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert not editor.errors["name"].isVisible()
    assert "built-in" in editor.errors["id"].text()
    fill(qtbot, editor, id="pack:mine")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert "':'" in editor.errors["id"].text()
    assert user_files(library) == []


def test_a_new_persona_is_saved_and_loads_back_identically(
    qtbot: QtBot, editor: PersonaEditor, library: PersonaLibrary
) -> None:
    qtbot.mouseClick(editor.new_button, Qt.MouseButton.LeftButton)
    assert editor.name_edit.hasFocus()
    fill(
        qtbot,
        editor,
        name="Ship's editor",
        id="ship-editor",
        description="Tightens prose",
        greeting="Send me a draft.",
        temperature="0.4",
        max_tokens="800",
        colour="#3a7bd5",
    )
    editor.prompt_edit.setPlainText('You edit text.\nKeep the author\'s voice; quote "exactly".')

    with qtbot.waitSignal(editor.saved) as signal:
        qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    assert signal.args == ["ship-editor"]
    assert user_files(library) == [library.user_dir / "ship-editor.toml"]
    saved = library.personas["ship-editor"]
    assert saved == Persona(
        id="ship-editor",
        name="Ship's editor",
        description="Tightens prose",
        greeting="Send me a draft.",
        system_prompt='You edit text.\nKeep the author\'s voice; quote "exactly".',
        params=GenerationParams(temperature=0.4, max_tokens=800),
        colour="#3a7bd5",
    )
    reloaded = PersonaLibrary(library.user_dir)
    reloaded.load()
    assert reloaded.problems == []
    assert reloaded.personas["ship-editor"] == saved
    assert editor.selected_id() == "ship-editor"
    assert editor.edit_button.isEnabled() and editor.delete_button.isEnabled()


def test_duplicate_a_built_in_then_edit_and_save(
    qtbot: QtBot, editor: PersonaEditor, library: PersonaLibrary
) -> None:
    editor.select("assistant")
    original = library.personas["assistant"]
    qtbot.mouseClick(editor.duplicate_button, Qt.MouseButton.LeftButton)
    assert editor.id_edit.text() == "assistant-copy"
    assert editor.name_edit.text() == "Assistant (copy)"
    assert user_files(library) == []  # a copy is not saved until Save

    fill(qtbot, editor, name="Terse assistant")
    editor.prompt_edit.setPlainText("Answer in one sentence.")
    with qtbot.waitSignal(editor.saved):
        qtbot.keyClick(editor.name_edit, Qt.Key.Key_Return)  # Save is the default button

    copy = library.personas["assistant-copy"]
    assert copy == original.model_copy(
        update={
            "id": "assistant-copy",
            "name": "Terse assistant",
            "system_prompt": "Answer in one sentence.",
        }
    )
    assert library.personas["assistant"] == original
    assert library.editable("assistant-copy")

    qtbot.mouseClick(editor.edit_button, Qt.MouseButton.LeftButton)
    assert editor.id_edit.isReadOnly()
    fill(qtbot, editor, description="Short answers")
    with qtbot.waitSignal(editor.saved):
        qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert library.personas["assistant-copy"].description == "Short answers"
    assert user_files(library) == [library.user_dir / "assistant-copy.toml"]


def test_built_ins_cannot_be_edited_or_deleted(
    qtbot: QtBot, editor: PersonaEditor, library: PersonaLibrary
) -> None:
    for row in range(editor.list.count()):
        assert editor.list.item(row).text().endswith("— built-in")
    editor.select("assistant")
    assert not editor.edit_button.isEnabled()
    assert not editor.delete_button.isEnabled()
    assert editor.duplicate_button.isEnabled()
    assert editor.name_edit.isReadOnly() and editor.prompt_edit.isReadOnly()
    assert "read-only" in editor.note.text()
    editor.edit_persona()
    editor.delete_persona()
    assert editor.confirmation is None
    assert editor.name_edit.isReadOnly()
    assert "assistant" in library.personas


def test_a_user_persona_is_deleted_after_confirmation(
    qtbot: QtBot, editor: PersonaEditor, library: PersonaLibrary
) -> None:
    library.save(Persona(id="gone", name="Soon gone"))
    editor._fill_list("gone")
    assert editor.selected_id() == "gone"
    assert editor.list.currentItem().text() == "Soon gone"

    qtbot.mouseClick(editor.delete_button, Qt.MouseButton.LeftButton)
    box = editor.confirmation
    assert box is not None and box.isVisible()
    assert box.windowModality() != Qt.WindowModality.ApplicationModal
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert "gone" in library.personas

    qtbot.mouseClick(editor.delete_button, Qt.MouseButton.LeftButton)
    box = editor.confirmation
    assert box is not None
    with qtbot.waitSignal(editor.deleted) as signal:
        qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert signal.args == ["gone"]
    assert "gone" not in library.personas
    assert user_files(library) == []


def test_escape_cancels_an_edit_before_closing(qtbot: QtBot, editor: PersonaEditor) -> None:
    qtbot.mouseClick(editor.new_button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(editor.name_edit, Qt.Key.Key_Escape)
    assert editor.isVisible()
    assert editor.name_edit.isReadOnly()
    assert editor.list.isEnabled()
    qtbot.keyClick(editor.list, Qt.Key.Key_Escape)
    assert not editor.isVisible()


def test_fits_and_screenshot(qtbot: QtBot, editor: PersonaEditor) -> None:
    qtbot.mouseClick(editor.new_button, Qt.MouseButton.LeftButton)
    fill(qtbot, editor, id="Bad Id", colour="blue")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    hint = editor.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    for widget in (*editor.editors.values(), editor.save_button, editor.close_buttons):
        assert widget.isVisible()
        assert widget.height() >= widget.minimumSizeHint().height()
        assert editor.rect().contains(widget.mapTo(editor, widget.rect().bottomRight()))
    editor.grab().save("/tmp/persona_editor.png")


@pytest.fixture
def engine(qloop: asyncio.AbstractEventLoop, library: PersonaLibrary) -> Engine:
    manager = ProviderManager(EngineConfig())
    manager.add_provider(FallbackProvider(), plugin="fallback")
    settings = Settings(engine=EngineSettings(default_chain=["fallback"]))
    return Engine(PluginHost(safe_mode=True), manager, library.personas, settings, library=library)


@pytest.fixture
def tab(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, engine: Engine) -> ChatTab:
    session = engine.open_session(persona_id="life-coach")
    tab = ChatTab(engine, session)
    qtbot.addWidget(tab)
    return tab


def picker_ids(tab: ChatTab) -> list[str]:
    return [tab.persona_picker.itemData(i) for i in range(tab.persona_picker.count())]


def test_refresh_personas_shows_a_saved_persona_in_the_picker(
    qtbot: QtBot, editor: PersonaEditor, tab: ChatTab
) -> None:
    changes: list[str] = []
    tab.persona_changed.connect(changes.append)
    assert tab.persona_picker.currentData() == "life-coach"
    qtbot.mouseClick(editor.new_button, Qt.MouseButton.LeftButton)
    fill(qtbot, editor, name="Aardvark", id="aardvark")
    editor.saved.connect(lambda _id: tab.refresh_personas())
    with qtbot.waitSignal(editor.saved):
        qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    assert "aardvark" in picker_ids(tab)
    assert picker_ids(tab) == list(tab.engine.personas)
    assert tab.persona_picker.currentData() == "life-coach"
    assert changes == []
    assert tab.session.persona is not None and tab.session.persona.id == "life-coach"
