"""The General page's own editor: per-provider limits."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.ui.form_layout import wrapped_label
from valis_desktop.ui.model_form import error_label


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
