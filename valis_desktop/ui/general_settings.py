"""The General page's own editors: the default provider chain and per-provider limits."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.ui.form_layout import wrapped_label
from valis_desktop.ui.model_form import error_label


class ChainList(QWidget):
    """The default chain: providers to check and order, tried from the top."""

    changed = Signal()

    def __init__(self, chain: Sequence[str], parent: QWidget) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setAccessibleName("Provider chain for new chats, in the order they are tried")
        self.list.setSizeAdjustPolicy(QListWidget.SizeAdjustPolicy.AdjustToContents)
        lines = self.list.fontMetrics().lineSpacing()
        self.list.setMinimumHeight(lines * 5)
        self.list.setMaximumHeight(lines * 12)
        for provider_id in chain:
            self._item(provider_id).setCheckState(Qt.CheckState.Checked)
        self.list.itemChanged.connect(lambda _item: self.changed.emit())
        self.error = error_label(self)
        side = QVBoxLayout()
        for text, step in (("Move &up", -1), ("Move &down", 1)):
            button = QPushButton(text, self)
            button.setAccessibleName(f"{text.replace('&', '')}: the selected provider")
            button.clicked.connect(lambda _checked=False, step=step: self._move(step))
            side.addWidget(button)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.error)

    def chain(self) -> list[str]:
        """The checked providers, in order."""
        items = (self.list.item(row) for row in range(self.list.count()))
        return [
            item.data(Qt.ItemDataRole.UserRole)
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    def set_known(self, labels: Mapping[str, str]) -> None:
        """List every provider of ``labels`` (id → text); others keep "not installed"."""
        self.list.blockSignals(True)
        for provider_id in labels:
            self._item(provider_id)
        for row in range(self.list.count()):
            item = self.list.item(row)
            provider_id = item.data(Qt.ItemDataRole.UserRole)
            item.setText(labels.get(provider_id, f"{provider_id} (not installed)"))
        self.list.blockSignals(False)

    def _item(self, provider_id: str) -> QListWidgetItem:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == provider_id:
                return self.list.item(row)
        item = QListWidgetItem(provider_id, self.list)
        item.setData(Qt.ItemDataRole.UserRole, provider_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Unchecked)
        return item

    def _move(self, step: int) -> None:
        row = self.list.currentRow()
        if row >= 0 and 0 <= row + step < self.list.count():
            self.list.insertItem(row + step, self.list.takeItem(row))
            self.list.setCurrentRow(row + step)
            self.changed.emit()


class LimitRows(QWidget):
    """Per-provider limits: rows of a provider id and how many answers it may give at once."""

    changed = Signal()

    def __init__(self, table: Any, parent: QWidget) -> None:
        super().__init__(parent)
        self._rows: list[tuple[QComboBox, QLineEdit, QLabel, QWidget]] = []
        self._known: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            wrapped_label(
                "How many answers one provider may give at once. Providers not listed use "
                "their own limit.",
                self,
            )
        )
        self._box = QVBoxLayout()
        layout.addLayout(self._box)
        self._add = QPushButton("&Add a limit", self)
        self._add.setAccessibleName("Add a limit for a provider")
        self._add.clicked.connect(lambda: self._add_row("", None, focus=True))
        layout.addWidget(self._add, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        for provider_id, entry in table.items() if isinstance(table, Mapping) else ():
            self._add_row(
                str(provider_id), entry.get("limit") if isinstance(entry, Mapping) else entry
            )

    def set_known(self, provider_ids: Sequence[str]) -> None:
        """Offer ``provider_ids`` in every row's list of providers."""
        self._known = list(provider_ids)
        for combo, *_ in self._rows:
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(self._known)
            combo.setEditText(text)
            combo.blockSignals(False)

    def read(self) -> tuple[dict[str, Any], dict[int, str]]:
        """The ``[providers]`` table, and the problems of rows that cannot be read."""
        table: dict[str, Any] = {}
        problems: dict[int, str] = {}
        for index, (combo, line, _, _) in enumerate(self._rows):
            provider_id, text = combo.currentText().strip(), line.text().strip()
            if not provider_id and not text:
                continue
            if not provider_id:
                problems[index] = "Choose a provider"
            elif provider_id in table:
                problems[index] = "This provider has a limit already"
            elif text:
                try:
                    table[provider_id] = {"limit": int(text)}
                except ValueError:
                    problems[index] = "Enter a whole number, such as 2"
        return table, problems

    def show_errors(self, problems: Mapping[int, str], by_provider: Mapping[str, str]) -> None:
        """Show each row's problem: its own (by index), else its provider's (by id)."""
        for index, (combo, _, error, _) in enumerate(self._rows):
            message = problems.get(index) or by_provider.get(combo.currentText().strip(), "")
            error.setText(message)
            error.setVisible(bool(message))

    def _add_row(self, provider_id: str, limit: Any, *, focus: bool = False) -> None:
        row = QWidget(self)
        combo = QComboBox(row)
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.addItems(self._known)
        combo.setEditText(provider_id)
        combo.setAccessibleName("Provider")
        line = QLineEdit("" if limit is None else str(limit), row)
        line.setAccessibleName("Answers at once from this provider")
        line.setPlaceholderText("limit")
        line.setMaximumWidth(line.fontMetrics().horizontalAdvance("0") * 10)
        remove = QPushButton("Remove", row)
        remove.setAccessibleName("Remove this limit")
        error = error_label(row)
        entry = (combo, line, error, row)
        remove.clicked.connect(lambda: self._remove(entry))
        combo.editTextChanged.connect(lambda _text: self.changed.emit())
        line.textChanged.connect(lambda _text: self.changed.emit())
        grid = QGridLayout(row)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(combo, 0, 0)
        grid.addWidget(line, 0, 1)
        grid.addWidget(remove, 0, 2)
        grid.addWidget(error, 1, 0, 1, 3)
        grid.setColumnStretch(0, 1)
        self._rows.append(entry)
        self._box.addWidget(row)
        chain = (self._add.previousInFocusChain() or self, combo, line, remove, self._add)
        for first, second in itertools.pairwise(chain):  # Tab follows the rows, then "Add"
            QWidget.setTabOrder(first, second)
        if focus:
            combo.setFocus()
            self.changed.emit()

    def _remove(self, entry: tuple[QComboBox, QLineEdit, QLabel, QWidget]) -> None:
        self._rows.remove(entry)
        entry[3].deleteLater()
        self.changed.emit()
