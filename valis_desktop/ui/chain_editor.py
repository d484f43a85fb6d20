"""Choose and order the providers a tab tries, first to last."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ChainEditor(QDialog):
    """A checklist of the installed providers in chain order; checked ones form the chain."""

    def __init__(
        self,
        chain: Sequence[str],
        available: Sequence[tuple[str, str]],
        parent: QWidget | None = None,
    ) -> None:
        """``available`` lists (provider id, display name) of every installed provider."""
        super().__init__(parent)
        self.setWindowTitle("Provider chain")
        self.setAccessibleName("Provider chain editor")
        names = dict(available)
        ordered = [pid for pid in chain] + [pid for pid, _ in available if pid not in chain]
        self._list = QListWidget(self)
        self._list.setAccessibleName("Providers, in the order they are tried")
        for provider_id in ordered:
            label = names.get(provider_id, f"{provider_id} (not installed)")
            item = QListWidgetItem(f"{label}  [{provider_id}]")
            item.setData(Qt.ItemDataRole.UserRole, provider_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if provider_id in chain else Qt.CheckState.Unchecked
            )
            self._list.addItem(item)
        self._list.setCurrentRow(0)
        up = QPushButton("Move &up", self)
        down = QPushButton("Move &down", self)
        up.setAccessibleName("Move the selected provider up")
        down.setAccessibleName("Move the selected provider down")
        up.clicked.connect(lambda: self._move(-1))
        down.clicked.connect(lambda: self._move(1))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        side = QVBoxLayout()
        side.addWidget(up)
        side.addWidget(down)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self._list, 1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        hint = QLabel(
            "A message goes to the first checked provider that is available; if it fails "
            "before answering, the next one is tried.",
            self,
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.resize(420, 320)

    def chain(self) -> list[str]:
        items = (self._list.item(row) for row in range(self._list.count()))
        return [
            item.data(Qt.ItemDataRole.UserRole)
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    def _move(self, step: int) -> None:
        row = self._list.currentRow()
        target = row + step
        if row < 0 or not 0 <= target < self._list.count():
            return
        item = self._list.takeItem(row)
        self._list.insertItem(target, item)
        self._list.setCurrentRow(target)
