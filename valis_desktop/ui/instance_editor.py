"""A plugin's provider instances in the Settings dialog: the list of them and the editor of one.

An instance's API key goes to the keychain only when the dialog saves; until then ``Instance``
records what should happen to it.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.api import ConnectionCheck, SettingsForm
from valis_desktop.core import secrets
from valis_desktop.ui.form_layout import scroll_area, wrapped_label
from valis_desktop.ui.model_form import ERROR_STYLE, ModelForm, error_messages, humanize


@dataclasses.dataclass
class Instance:
    """One provider instance as the dialog edits it: its table and what happens to its key."""

    table: dict[str, Any]
    stored_under: str | None = None
    """The id under which the keychain may hold this instance's key (its id in the file)."""
    new_secret: str | None = None
    """A key typed in the dialog, stored on Save."""
    remove_secret: bool = False

    @property
    def id(self) -> str:
        """The provider id the instance has now (``""`` when it has none)."""
        return str(self.table.get("id", ""))


class InstanceEditor(QDialog):
    """Edits one provider instance: the plugin's fields, its API key and "Test connection"."""

    def __init__(
        self, form: SettingsForm, instance: Instance, taken: Collection[str], parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.form, self.instance, self._taken = form, dataclasses.replace(instance), taken
        self.setWindowTitle(f"{form.title}: {instance.id or 'new instance'}")
        self.setAccessibleName(f"{form.title} instance")
        self.test: asyncio.Future[ConnectionCheck] | None = None
        self._closed = False
        secret_name = form.secret_field or ""
        self.fields = ModelForm(
            form.instance_model,
            instance.table,
            exclude={secret_name},
            suggest={"model"},
            mnemonics={"o", "c", "t", "p", "v"},
            parent=self,
        )
        scroll = scroll_area(self.fields, self)  # first, so that Tab starts in the fields
        self.key = QLineEdit(self)
        self.key_note = QLabel(self)
        self.stored = QLabel("•••• (stored in the keychain)", self)
        self.replace = QPushButton("Re&place", self)
        self.remove = QPushButton("Remo&ve", self)
        if form.secret_field:
            self._build_key_row(humanize(form.secret_field))
        else:
            for widget in (self.key, self.key_note, self.stored, self.replace, self.remove):
                widget.hide()
        self.test_button = QPushButton("&Test connection", self)
        self.test_button.setAccessibleName("Test connection")
        self.test_button.clicked.connect(self._test_clicked)
        self.outcome = QLabel(self)
        self.outcome.setWordWrap(True)
        self.outcome.setAccessibleName("Connection test result")
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        if form.test_connection is not None:
            cell = QWidget(self)
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignLeft)
            column.addWidget(self.outcome)
            self.fields.add_row(QLabel("Connection:", self), cell, mnemonic=False)
        else:
            self.test_button.hide()
            self.outcome.hide()
        layout = QVBoxLayout(self)
        if form.description:
            layout.addWidget(wrapped_label(form.description, self))
        layout.addWidget(scroll, 1)
        layout.addWidget(self.buttons)
        self.fields.changed.connect(self._revalidate)
        self._revalidate()
        self.resize(640, min(self.sizeHint().height() + 60, 680))

    def done(self, result: int) -> None:
        """Closing the editor, however it happens, stops a running connection test."""
        self._closed = True
        if self.test is not None:
            self.test.cancel()
        if result == QDialog.DialogCode.Accepted:
            self.instance.table = self.fields.read()[0]
            if self.key.isEnabled() and not self.key.isHidden() and self.key.text():
                self.instance.new_secret, self.instance.remove_secret = self.key.text(), False
        super().done(result)

    def _build_key_row(self, title: str) -> None:
        keychain = secrets.available()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName(title)
        self.key.setEnabled(keychain)
        self.key.textChanged.connect(self._revalidate)
        self.replace.setAccessibleName(f"Replace the stored {title}")
        self.remove.setAccessibleName(f"Remove the stored {title}")
        self.replace.clicked.connect(lambda: self._show_key(entering=True, focus=True))
        self.remove.clicked.connect(self._remove_key)
        self.key_note.setWordWrap(True)
        self.key_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        row = QHBoxLayout()
        for widget in (self.key, self.stored, self.replace, self.remove):
            row.addWidget(widget)
        row.setStretch(1, 1)
        cell = QWidget(self)
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.key_note)
        column.addStretch(1)
        self.fields.add_row(QLabel(title + ":", self), cell)
        if not keychain:
            fields = self.form.instance_model.model_fields
            env = next((name for name in fields if name.endswith("_env")), "")
            self.key.setPlaceholderText("No keychain on this system")
            self.key_note.setText(
                "This system has no keychain, so the key cannot be stored safely and is never "
                "written to the settings file. "
                + (
                    f"Put the key in an environment variable and enter its name in "
                    f"“{humanize(env)}”."
                    if env
                    else "Start Valis Desktop where a keychain is available to use a key."
                )
            )
            self._show_key(entering=True)
            return
        stored = self.instance.stored_under is not None and not self.instance.remove_secret
        has_key = self.instance.new_secret is not None or (
            stored
            and secrets.read_secret(self.form.plugin, self.instance.stored_under or "") is not None
        )
        self._show_key(entering=not has_key)

    def _show_key(self, *, entering: bool, focus: bool = False) -> None:
        self.key.setVisible(entering)
        self.key_note.setVisible(entering)
        for widget in (self.stored, self.replace, self.remove):
            widget.setVisible(not entering)
        if self.instance.new_secret is not None:
            self.stored.setText("•••• (goes to the keychain when you save)")
        if entering and self.key.isEnabled():
            self.key.setPlaceholderText("Paste the key")
            self.key_note.setText(
                "The stored key is removed when you save."
                if self.instance.remove_secret
                else "Kept in the system keychain, never in the settings file."
            )
            if focus:
                self.key.setFocus()

    def _remove_key(self) -> None:
        self.instance.new_secret, self.instance.remove_secret = None, True
        self._show_key(entering=True, focus=True)

    def _revalidate(self) -> None:
        instance_id = self.fields.read()[0].get("id")
        taken = [(("id",), f"Another provider has the id “{instance_id}”")]
        valid = self.fields.validate(taken if instance_id in self._taken else ()) is not None
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(valid)

    def _secret(self) -> str | None:
        if not self.key.isHidden() and self.key.text():
            return self.key.text()
        if self.instance.new_secret is not None or self.instance.remove_secret:
            return self.instance.new_secret
        stored = self.instance.stored_under
        return secrets.read_secret(self.form.plugin, stored) if stored is not None else None

    def _test_clicked(self) -> None:
        if self.test is not None:
            self.test.cancel()
            return
        instance = self.fields.validate()
        if instance is None or self.form.test_connection is None:
            self._show_result(False, "Fix the marked fields first.")
            return
        secret = self._secret()
        self.test = asyncio.ensure_future(self.form.test_connection(instance, secret))
        self.test.add_done_callback(lambda task: self._tested(task, secret))
        self.test_button.setText("S&top test")
        self.outcome.setStyleSheet("")
        self.outcome.setText("Testing the connection…")

    def _tested(self, task: asyncio.Future[ConnectionCheck], secret: str | None) -> None:
        if self._closed:
            return  # the widgets may be gone already
        self.test = None
        self.test_button.setText("&Test connection")
        if task.cancelled():
            self.outcome.setText("Test stopped.")
            return
        error = task.exception()
        if error is not None:
            message = f"The test failed: {type(error).__name__}: {error}"
            self._show_result(False, message.replace(secret, "••••") if secret else message)
            return
        check = task.result()
        self._show_result(check.ok, check.message)
        if check.models and "model" in self.form.instance_model.model_fields:
            self.fields.suggest("model", check.models)
            self.outcome.setText(
                f"{self.outcome.text()}\nIts models are offered in the Model list."
            )

    def _show_result(self, ok: bool, message: str) -> None:
        self.outcome.setStyleSheet("color: #2e7d32;" if ok else ERROR_STYLE)
        self.outcome.setText(("✓ " if ok else "✗ ") + message)


class PluginInstances(QGroupBox):
    """One plugin's provider instances: a list with Add, Edit, Duplicate and Remove."""

    changed = Signal()

    def __init__(
        self,
        form: SettingsForm,
        table: Mapping[str, Any],
        taken: Callable[[Instance | None], set[str]],
        parent: QWidget,
    ) -> None:
        super().__init__(form.title, parent)
        self.form, self._taken = form, taken
        self.touched = False
        self.editor: InstanceEditor | None = None
        entries = table.get("instances", [])
        entries = entries if isinstance(entries, list) else []
        self.instances = [
            Instance(dict(entry), stored_under=str(entry.get("id", "")))
            for entry in entries
            if isinstance(entry, Mapping)
        ]
        self.original_ids = {instance.id for instance in self.instances}
        self.list = QListWidget(self)
        self.list.setAccessibleName(f"{form.title}: instances")
        self.list.itemActivated.connect(lambda _item: self.edit())
        self.list.currentRowChanged.connect(lambda _row: self._enable())
        self.list.setFixedHeight(self.list.fontMetrics().lineSpacing() * 6 + 16)
        self.list.setIconSize(QSize(16, 16))
        side = QVBoxLayout()
        self._buttons: list[QPushButton] = []
        for text, action in (
            ("&Add…", self.add),
            ("&Edit…", self.edit),
            ("D&uplicate…", self.duplicate),
            ("&Remove", self.remove),
        ):
            button = QPushButton(text, self)
            button.setAccessibleName(f"{text.replace('&', '').rstrip('…')} ({form.title})")
            button.clicked.connect(action)
            side.addWidget(button)
            self._buttons.append(button)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        if form.description:
            layout.addWidget(wrapped_label(form.description, self))
        layout.addLayout(row)
        self._refresh()

    def add(self) -> None:
        """Open an editor for a new instance; it joins the list when accepted."""
        self._open(Instance({}), None)

    def edit(self) -> None:
        """Open an editor for the selected instance."""
        row = self.list.currentRow()
        if row >= 0:
            self._open(self.instances[row], row)

    def duplicate(self) -> None:
        """A copy under a new id, sharing the original's key, opened for editing."""
        row = self.list.currentRow()
        if row < 0:
            return
        original = self.instances[row]
        table = copy.deepcopy(original.table)
        taken = self._taken(None)
        table["id"] = next(
            name
            for number in range(1, len(taken) + 2)
            if (name := f"{original.id}-copy" + (f"-{number}" if number > 1 else "")) not in taken
        )
        if table.get("name"):
            table["name"] = f"{table['name']} (copy)"
        self._open(dataclasses.replace(original, table=table), None)

    def remove(self) -> None:
        """Drop the selected instance; its key leaves the keychain on Save."""
        row = self.list.currentRow()
        if row >= 0:
            del self.instances[row]
            self._changed()

    def _open(self, instance: Instance, row: int | None) -> None:
        taken = self._taken(self.instances[row] if row is not None else None)
        editor = InstanceEditor(self.form, instance, taken, self.window())
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.accepted.connect(lambda: self._edited(editor.instance, row))
        editor.finished.connect(lambda _result: setattr(self, "editor", None))
        self.editor = editor
        editor.open()

    def _edited(self, instance: Instance, row: int | None) -> None:
        if row is None:
            self.instances.append(instance)
            row = len(self.instances) - 1
        else:
            self.instances[row] = instance
        self._changed()
        self.list.setCurrentRow(row)

    def _changed(self) -> None:
        self.touched = True
        self._refresh()
        self.changed.emit()

    def _refresh(self) -> None:
        row = self.list.currentRow()
        self.list.clear()
        warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for instance in self.instances:
            name, model = instance.table.get("name"), instance.table.get("model")
            text = f"{name} ({instance.id})" if name else instance.id or "(no id)"
            text += f" · {model}" if model else ""
            item = QListWidgetItem(text)
            try:
                self.form.instance_model.model_validate(instance.table)
            except ValidationError as error:
                loc, message = error_messages(error)[0]
                item.setText(f"{text} — needs fixing: {'.'.join(map(str, loc))}: {message}")
                item.setIcon(warning)
            self.list.addItem(item)
        self.list.setCurrentRow(min(max(row, 0), self.list.count() - 1))
        self._enable()

    def _enable(self) -> None:
        for button in self._buttons[1:]:
            button.setEnabled(self.list.currentRow() >= 0)
