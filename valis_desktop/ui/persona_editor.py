"""The persona editor: every persona listed, the user's own created, edited and deleted.

Built-in and plugin personas are shown read-only; "Duplicate" makes an editable copy of any
persona. Nothing is written until Save, and Save writes nothing while a field has a problem:
the problems are shown beneath their fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.api import Persona
from valis_desktop.core.personas import PersonaError, PersonaLibrary, PersonaOrigin
from valis_desktop.ui.model_form import REQUIRED, error_label, error_messages

ID_HINT = "Use lower-case letters, digits, “.”, “_” and “-”, starting with a letter or a digit"
COLOUR_HINT = "Use the form #rrggbb (for example #3a7bd5), or leave it empty"
_FIELDS = (
    "name",
    "id",
    "description",
    "greeting",
    "system_prompt",
    "temperature",
    "max_tokens",
    "colour",
)


class PersonaEditor(QDialog):
    """Lists ``library``'s personas and edits the user's own. ``saved`` and ``deleted`` carry
    the persona's id, after the library (and so the engine's personas) changed."""

    saved = Signal(str)
    deleted = Signal(str)

    def __init__(self, library: PersonaLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setWindowTitle("Personas")
        self._editing = False
        self._base: Persona | None = None
        """The persona being edited or duplicated (its other fields are kept)."""
        self._new = False
        """Whether the persona being edited is not in the library yet."""
        self.confirmation: QMessageBox | None = None

        # The list and its buttons.
        self.list = QListWidget(self)
        self.list.setAccessibleName("Personas")
        self.list.currentItemChanged.connect(self._selected)
        list_label = QLabel("Per&sonas", self)
        list_label.setBuddy(self.list)
        self.new_button = QPushButton("&New", self)
        self.new_button.setAccessibleName("New persona")
        self.new_button.clicked.connect(self.new_persona)
        self.duplicate_button = QPushButton("D&uplicate", self)
        self.duplicate_button.setAccessibleName("Duplicate persona")
        self.duplicate_button.setToolTip("An editable copy of the selected persona")
        self.duplicate_button.clicked.connect(self.duplicate_persona)
        self.edit_button = QPushButton("&Edit", self)
        self.edit_button.setAccessibleName("Edit persona")
        self.edit_button.clicked.connect(self.edit_persona)
        self.delete_button = QPushButton("De&lete", self)
        self.delete_button.setAccessibleName("Delete persona")
        self.delete_button.clicked.connect(self.delete_persona)
        list_buttons = QHBoxLayout()
        for button in (
            self.new_button,
            self.duplicate_button,
            self.edit_button,
            self.delete_button,
        ):
            list_buttons.addWidget(button)
        left = QVBoxLayout()
        left.addWidget(list_label)
        left.addWidget(self.list, 1)
        left.addLayout(list_buttons)

        # The edit pane.
        self.pane = QGroupBox("Persona", self)
        self.note = QLabel(self.pane)
        self.note.setWordWrap(True)
        self.note.setAccessibleName("About this persona")
        self.name_edit = QLineEdit(self.pane)
        self.id_edit = QLineEdit(self.pane)
        self.id_edit.setPlaceholderText("for example my-editor")
        self.id_edit.setToolTip("The persona's file name and its id in chats; fixed once saved")
        self.description_edit = QLineEdit(self.pane)
        self.description_edit.setPlaceholderText("One line, shown in the persona list")
        self.greeting_edit = QLineEdit(self.pane)
        self.greeting_edit.setPlaceholderText("The first message of a new chat (optional)")
        self.prompt_edit = QPlainTextEdit(self.pane)
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setPlaceholderText("How the persona speaks and what it knows")
        self.temperature_edit = QLineEdit(self.pane)
        self.temperature_edit.setPlaceholderText("Provider default (0 to 2)")
        self.max_tokens_edit = QLineEdit(self.pane)
        self.max_tokens_edit.setPlaceholderText("Provider default")
        self.colour_edit = QLineEdit(self.pane)
        self.colour_edit.setPlaceholderText("#rrggbb, or empty for none")
        self.editors: dict[str, QLineEdit | QPlainTextEdit] = {
            "name": self.name_edit,
            "id": self.id_edit,
            "description": self.description_edit,
            "greeting": self.greeting_edit,
            "system_prompt": self.prompt_edit,
            "temperature": self.temperature_edit,
            "max_tokens": self.max_tokens_edit,
            "colour": self.colour_edit,
        }
        titles = {
            "name": "Na&me",
            "id": "&ID",
            "description": "Descri&ption",
            "greeting": "&Greeting",
            "system_prompt": "System p&rompt",
            "temperature": "&Temperature",
            "max_tokens": "Ma&x tokens",
            "colour": "&Colour",
        }
        self.errors: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        for field in _FIELDS:
            editor = self.editors[field]
            editor.setAccessibleName(titles[field].replace("&", ""))
            label = QLabel(titles[field], self.pane)
            label.setBuddy(editor)
            error = error_label(self.pane)
            error.setAccessibleName(f"Problem with {titles[field].replace('&', '').lower()}")
            self.errors[field] = error
            cell = QVBoxLayout()
            cell.setSpacing(2)
            cell.addWidget(editor)
            cell.addWidget(error)
            form.addRow(label, cell)
        self.problem = error_label(self.pane)
        self.problem.setAccessibleName("Problem saving the persona")
        self.save_button = QPushButton("&Save", self.pane)
        self.save_button.setAccessibleName("Save persona")
        self.save_button.clicked.connect(self.save)
        self.cancel_button = QPushButton("Cancel", self.pane)
        self.cancel_button.setAccessibleName("Cancel editing")
        self.cancel_button.setToolTip("Discard the changes (Esc)")
        self.cancel_button.clicked.connect(self.cancel_edit)
        pane_buttons = QHBoxLayout()
        pane_buttons.addStretch(1)
        pane_buttons.addWidget(self.save_button)
        pane_buttons.addWidget(self.cancel_button)
        pane_layout = QVBoxLayout(self.pane)
        pane_layout.addWidget(self.note)
        pane_layout.addLayout(form, 1)
        pane_layout.addWidget(self.problem)
        pane_layout.addLayout(pane_buttons)

        self.close_buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.close_buttons.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addWidget(self.pane, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.close_buttons)
        self.resize(880, 600)

        self._fill_list()
        self._set_editing(False)
        self._selected(self.list.currentItem())

    # The list

    def selected_id(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def select(self, persona_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == persona_id:
                self.list.setCurrentRow(row)
                return

    def _fill_list(self, select: str | None = None) -> None:
        select = select or self.selected_id()
        self.list.clear()
        for persona_id, persona in self.library.personas.items():
            item = QListWidgetItem(self._label(persona_id, persona), self.list)
            item.setData(Qt.ItemDataRole.UserRole, persona_id)
            if persona.description:
                item.setToolTip(persona.description)
        if select is not None:
            self.select(select)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)

    def _label(self, persona_id: str, persona: Persona) -> str:
        origin = self.library.origin(persona_id)
        if origin is PersonaOrigin.BUILTIN:
            return f"{persona.name} — built-in"
        if origin is PersonaOrigin.PLUGIN:
            return f"{persona.name} — from {self.library.plugin(persona_id)}"
        return persona.name

    def _selected(self, item: QListWidgetItem | None) -> None:
        if self._editing:
            return
        persona_id = self.selected_id()
        persona = None if persona_id is None else self.library.get(persona_id)
        self._show(persona)
        editable = persona_id is not None and self.library.editable(persona_id)
        self.duplicate_button.setEnabled(persona is not None)
        self.edit_button.setEnabled(editable)
        self.delete_button.setEnabled(editable)
        if persona_id is None or persona is None:
            self.note.setText("No persona selected.")
        elif editable:
            self.note.setText("Your persona: Edit changes it, Delete removes it.")
        else:
            origin = self.library.origin(persona_id)
            where = (
                "A built-in persona"
                if origin is PersonaOrigin.BUILTIN
                else f"A persona from the plugin {self.library.plugin(persona_id)}"
            )
            self.note.setText(f"{where}: read-only. Duplicate it to make your own version.")

    # Actions

    def new_persona(self) -> None:
        self._start_edit(None, new=True)
        self.note.setText("A new persona: give it a name and an id, then Save.")

    def duplicate_persona(self) -> None:
        persona_id = self.selected_id()
        if persona_id is None:
            return
        self._start_edit(self.library.duplicate(persona_id), new=True)
        self.note.setText("A copy, not saved yet: change what you like, then Save.")

    def edit_persona(self) -> None:
        persona_id = self.selected_id()
        if persona_id is None or not self.library.editable(persona_id):
            return
        self._start_edit(self.library.personas[persona_id], new=False)
        self.note.setText("Editing your persona. Its id stays as it is.")

    def delete_persona(self) -> None:
        persona_id = self.selected_id()
        if persona_id is None or not self.library.editable(persona_id):
            return
        name = self.library.personas[persona_id].name
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete persona",
            f"Delete the persona “{name}”? Its file is removed; this cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self._confirmed(box, button, persona_id))
        box.finished.connect(box.deleteLater)
        self.confirmation = box
        box.open()

    def _confirmed(self, box: QMessageBox, button: QAbstractButton, persona_id: str) -> None:
        self.confirmation = None
        if box.standardButton(button) != QMessageBox.StandardButton.Yes:
            return
        try:
            self.library.delete(persona_id)
        except (PersonaError, KeyError, OSError) as error:
            self.note.setText(f"The persona was not deleted: {error}")
            return
        self._fill_list()
        self._selected(self.list.currentItem())
        self.deleted.emit(persona_id)

    def cancel_edit(self) -> None:
        self._set_editing(False)
        self._selected(self.list.currentItem())

    def reject(self) -> None:
        """Escape while editing discards the edit; otherwise it closes the editor."""
        if self._editing:
            self.cancel_edit()
        else:
            super().reject()

    def save(self) -> bool:
        """Validate the pane and save the persona; ``False`` (and nothing written) if a field
        has a problem, which is then shown beneath it."""
        if not self._editing:
            return False
        self._clear_errors()
        problems: dict[str, str] = {}
        data: dict[str, Any] = {} if self._base is None else self._base.model_dump()
        data.update(
            id=self.id_edit.text().strip(),
            name=self.name_edit.text().strip(),
            description=self.description_edit.text().strip(),
            greeting=self.greeting_edit.text().strip(),
            system_prompt=self.prompt_edit.toPlainText().strip(),
            colour=self.colour_edit.text().strip(),
        )
        params: dict[str, Any] = {}
        temperature = self.temperature_edit.text().strip()
        if temperature:
            try:
                params["temperature"] = float(temperature)
            except ValueError:
                problems["temperature"] = "Enter a number from 0 to 2, or leave it empty"
        max_tokens = self.max_tokens_edit.text().strip()
        if max_tokens:
            try:
                params["max_tokens"] = int(max_tokens)
            except ValueError:
                problems["max_tokens"] = "Enter a whole number, or leave it empty"
        data["params"] = params or None
        if not data["id"]:
            problems["id"] = REQUIRED
        if not data["name"]:
            problems["name"] = REQUIRED
        persona: Persona | None = None
        try:
            persona = Persona.model_validate(data)
        except ValidationError as error:
            for loc, message in error_messages(error):
                field = str(loc[-1]) if loc else ""
                if field not in self.errors:
                    field = "name"
                problems.setdefault(field, self._wording(field, message))
        if "id" not in problems and data["id"]:
            try:
                self.library.check_user_id(data["id"])
            except PersonaError as error:
                problems["id"] = str(error)
            else:
                if self._new and data["id"] in self.library.personas:
                    problems["id"] = (
                        f"Another persona already has the id “{data['id']}”. Choose another."
                    )
        if problems or persona is None:
            self._show_errors(problems)
            return False
        try:
            self.library.save(persona)
        except PersonaError as error:
            self._show_errors({"id": str(error)})
            return False
        except OSError as error:
            self.problem.setText(f"The persona could not be written: {error}")
            self.problem.show()
            return False
        self._set_editing(False)
        self._fill_list(persona.id)
        self._selected(self.list.currentItem())
        self.list.setFocus()
        self.saved.emit(persona.id)
        return True

    # The pane

    def _start_edit(self, persona: Persona | None, *, new: bool) -> None:
        self._base = persona
        self._new = new
        self._show(persona)
        self._set_editing(True)
        self.id_edit.setReadOnly(not new)
        (self.name_edit if new or persona is None else self.description_edit).setFocus()
        self.name_edit.selectAll()

    def _set_editing(self, editing: bool) -> None:
        self._editing = editing
        self._clear_errors()
        for editor in self.editors.values():
            editor.setReadOnly(not editing)
        self.save_button.setEnabled(editing)
        self.cancel_button.setEnabled(editing)
        self.save_button.setDefault(editing)
        for widget in (self.list, self.new_button, self.duplicate_button):
            widget.setEnabled(not editing)
        self.edit_button.setEnabled(False)
        self.delete_button.setEnabled(False)
        if not editing:
            self._base = None
            self._new = False

    def _show(self, persona: Persona | None) -> None:
        params = persona.params if persona is not None else None
        temperature = params.temperature if params is not None else None
        max_tokens = params.max_tokens if params is not None else None
        self.name_edit.setText(persona.name if persona else "")
        self.id_edit.setText(persona.id if persona else "")
        self.description_edit.setText(persona.description if persona else "")
        self.greeting_edit.setText(persona.greeting if persona else "")
        self.prompt_edit.setPlainText(persona.system_prompt if persona else "")
        self.temperature_edit.setText("" if temperature is None else f"{temperature:g}")
        self.max_tokens_edit.setText("" if max_tokens is None else str(max_tokens))
        self.colour_edit.setText(persona.colour if persona else "")

    def _show_errors(self, problems: dict[str, str]) -> None:
        first: QWidget | None = None
        for field in _FIELDS:
            if field in problems:
                self.errors[field].setText(problems[field])
                self.errors[field].show()
                first = first or self.editors[field]
        if first is not None:
            first.setFocus()

    def _clear_errors(self) -> None:
        for label in (*self.errors.values(), self.problem):
            label.clear()
            label.hide()

    @staticmethod
    def _wording(field: str, message: str) -> str:
        if field == "id" and message.startswith("Does not have the expected form"):
            return ID_HINT
        if field == "colour" and message.startswith("Does not have the expected form"):
            return COLOUR_HINT
        return message
