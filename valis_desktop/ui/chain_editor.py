"""Choose and order the providers a chat tries, first to last: one checklist widget, used by a
tab's chain dialog and by the Settings dialog's default chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt, Signal
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

_ID_ROLE = Qt.ItemDataRole.UserRole


class ChainList(QWidget):
    """Providers in chain order with a check box each; the checked ones form the chain. A
    provider named in the chain but not installed stays listed as "(not installed)"."""

    changed = Signal()
    """Something was checked, unchecked or moved."""

    def __init__(
        self,
        chain: Sequence[str],
        labels: Mapping[str, str] | None = None,
        parent: QWidget | None = None,
        *,
        accessible_name: str = "Providers, in the order they are tried",
    ) -> None:
        """``labels`` maps every installed provider's id to the text that shows it."""
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setAccessibleName(accessible_name)
        for provider_id in chain:
            self._item(provider_id).setCheckState(Qt.CheckState.Checked)
        self.set_known(labels or {})
        self.list.setCurrentRow(0)
        self.list.itemChanged.connect(lambda _item: self.changed.emit())
        side = QVBoxLayout()
        for text, step in (("Move &up", -1), ("Move &down", 1)):
            button = QPushButton(text, self)
            button.setAccessibleName(f"{text.replace('&', '')}: the selected provider")
            button.clicked.connect(lambda _checked=False, step=step: self._move(step))
            side.addWidget(button)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(side)

    def chain(self) -> list[str]:
        """The checked providers, in order."""
        items = (self.list.item(row) for row in range(self.list.count()))
        return [item.data(_ID_ROLE) for item in items if item.checkState() == Qt.CheckState.Checked]

    def set_known(self, labels: Mapping[str, str]) -> None:
        """List every provider of ``labels`` (id → text) after those of the chain; the chain's
        others are marked "(not installed)"."""
        self.list.blockSignals(True)
        for provider_id in labels:
            self._item(provider_id)
        for row in range(self.list.count()):
            item = self.list.item(row)
            provider_id = item.data(_ID_ROLE)
            item.setText(labels.get(provider_id, f"{provider_id} (not installed)"))
        self.list.blockSignals(False)

    def _item(self, provider_id: str) -> QListWidgetItem:
        for row in range(self.list.count()):
            if self.list.item(row).data(_ID_ROLE) == provider_id:
                return self.list.item(row)
        item = QListWidgetItem(provider_id, self.list)
        item.setData(_ID_ROLE, provider_id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Unchecked)
        return item

    def _move(self, step: int) -> None:
        row = self.list.currentRow()
        if row >= 0 and 0 <= row + step < self.list.count():
            self.list.insertItem(row + step, self.list.takeItem(row))
            self.list.setCurrentRow(row + step)
            self.changed.emit()


class ChainEditor(QDialog):
    """A chat's chain in a dialog: OK applies it, Cancel leaves it."""

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
        labels = {provider_id: f"{name}  [{provider_id}]" for provider_id, name in available}
        self.chain_list = ChainList(chain, labels, self)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        hint = QLabel(
            "A message goes to the first checked provider that is available; if it fails "
            "before answering, the next one is tried.",
            self,
        )
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.chain_list, 1)
        layout.addWidget(buttons)
        self.resize(420, 320)

    def chain(self) -> list[str]:
        return self.chain_list.chain()
