"""Installing or removing a plugin with pip, its output shown live; cancelling kills pip.

The window stays responsive: pip runs in a subprocess on the event loop (see
``core.plugin_installer``). When pip succeeds, ``after()`` looks at the installed plugins again
(the plugins dialog passes ``Engine.discover_plugins``) and its summary is shown.
"""

from __future__ import annotations

import asyncio
import enum
import shlex
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.plugin_installer import Installer, InstallerError, PipResult
from valis_desktop.ui.model_form import ERROR_STYLE

OUTPUT_LINES = 5000
"""pip's output kept on screen (the oldest lines go first)."""


class PipAction(enum.StrEnum):
    INSTALL = "install"
    UNINSTALL = "uninstall"


class PipRunDialog(QDialog):
    """``pip install`` of what the user names, or ``pip uninstall`` of one distribution."""

    ended = Signal(bool)
    """pip ended (succeeded or not) and ``after`` ran: the installed plugins were looked at
    again, since even a failed or cancelled run may have changed something."""

    def __init__(
        self,
        action: PipAction,
        installer: Installer,
        after: Callable[[], str],
        *,
        distribution: str = "",
        parent: QWidget | None = None,
    ) -> None:
        """``after`` runs whenever pip ended and returns what changed in a sentence or two
        (``""`` if nothing did); ``distribution`` is what an uninstall removes."""
        super().__init__(parent)
        self.action, self.installer, self._after = action, installer, after
        self.distribution = distribution
        self.task: asyncio.Task[PipResult] | None = None
        self._closed = False
        self.setObjectName("pipRunDialog")
        installing = action is PipAction.INSTALL
        self.setWindowTitle("Install a plugin" if installing else f"Uninstall {distribution}")

        self.spec_edit = QLineEdit()
        self.spec_edit.setPlaceholderText("llm-bridge, ./my-plugin, plugin.whl, git+https://…")
        self.spec_edit.setAccessibleName("What to install")
        self.spec_edit.setAccessibleDescription(
            "A package name from the package index, a local folder, a wheel or sdist file, "
            "or a version-control URL: whatever pip accepts. Separate several with spaces."
        )
        self.spec_edit.setClearButtonEnabled(True)
        self.spec_edit.textChanged.connect(self._update_buttons)
        self.spec_edit.returnPressed.connect(self.start)
        spec_label = QLabel("&Package:")
        spec_label.setBuddy(self.spec_edit)
        self.file_button = QPushButton("&File…")
        self.file_button.setAccessibleName("Choose a wheel or sdist file")
        self.file_button.clicked.connect(self._choose_file)
        self.folder_button = QPushButton("Fol&der…")
        self.folder_button.setAccessibleName("Choose a plugin's source folder")
        self.folder_button.clicked.connect(self._choose_folder)
        hint = QLabel(
            "A package name, a folder, a wheel or sdist file, or a git URL. Valis Desktop and "
            "its core libraries are pinned: a plugin that needs other versions of them is "
            "refused and nothing changes."
        )
        hint.setWordWrap(True)
        hint.setAccessibleName("How installing works")

        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(OUTPUT_LINES)
        self.output.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.output.setAccessibleName("pip output")
        self.output.setTabChangesFocus(True)
        self.output.setPlaceholderText("pip's output appears here.")
        output_label = QLabel("pip &output:")
        output_label.setBuddy(self.output)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setAccessibleName("Outcome")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox()
        verb = "&Install" if installing else "&Uninstall"
        self.run_button = self.buttons.addButton(verb, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        if installing:
            row = QHBoxLayout()
            row.addWidget(spec_label)
            row.addWidget(self.spec_edit, 1)
            row.addWidget(self.file_button)
            row.addWidget(self.folder_button)
            layout.addLayout(row)
            layout.addWidget(hint)
        else:
            for widget in (self.spec_edit, spec_label, self.file_button, self.folder_button, hint):
                widget.hide()
        layout.addWidget(output_label)
        layout.addWidget(self.output, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)
        self.resize(760, 460)
        self._update_buttons()

    @property
    def running(self) -> bool:
        return self.task is not None

    def specs(self) -> list[str]:
        """What to install: the field split as a shell would (quote a path with spaces)."""
        try:
            return shlex.split(self.spec_edit.text())
        except ValueError:  # an unbalanced quote, while typing
            return []

    def start(self) -> None:
        """Run pip now (the Install or Uninstall button)."""
        if self.running or not self.run_button.isEnabled():
            return
        self.output.clear()
        self.status_label.setStyleSheet("")
        if self.action is PipAction.INSTALL:
            self.status_label.setText(f"Installing {' '.join(self.specs())}…")
            work = self.installer.install(self.specs(), self._line)
        else:
            self.status_label.setText(f"Uninstalling {self.distribution}…")
            work = self.installer.uninstall([self.distribution], self._line)
        self.task = asyncio.ensure_future(work)
        self.task.add_done_callback(self._ended)
        self._update_buttons()
        self.cancel_button.setFocus()

    def cancel(self) -> None:
        """Stop pip if it runs (it is killed; what it did so far may remain), else close."""
        if self.task is not None:
            self.task.cancel()
        else:
            self.reject()

    def _line(self, line: str) -> None:
        self.output.appendPlainText(line)

    def _ended(self, task: asyncio.Task[PipResult]) -> None:
        self.task = None
        if self._closed:
            return  # the widgets may be gone
        self._update_buttons()
        changes = self._after()
        ok = False
        if task.cancelled():
            message = "Cancelled: pip was stopped."
        elif isinstance(error := task.exception(), InstallerError):
            message = str(error)
        elif error is not None:
            message = f"pip could not run: {type(error).__name__}: {error}"
        elif not (result := task.result()).ok:
            unchanged = "" if changes else "; nothing was changed"
            message = f"pip failed (exit status {result.returncode}){unchanged}.\n" + _last_lines(
                result.reason
            )
        elif changes:
            ok, message = True, changes
        elif self.action is PipAction.INSTALL:
            ok, message = (
                True,
                (
                    "Installed, but no new plugin was found: the package has no "
                    f"'{ENTRY_POINT_GROUP}' entry point, or its plugins were installed already."
                ),
            )
        else:
            ok, message = True, f"Uninstalled {self.distribution}."
        if changes and not ok:
            message += "\n" + changes
        self._show(ok, message)
        # Focus where the next step is: closing, or fixing what to install.
        retry = not ok and self.action is PipAction.INSTALL
        (self.spec_edit if retry else self.close_button).setFocus()
        self.ended.emit(ok)

    def _show(self, ok: bool, message: str) -> None:
        self.status_label.setStyleSheet("color: #2e7d32;" if ok else ERROR_STYLE)
        self.status_label.setText(("✓ " if ok else "✗ ") + message)

    def _update_buttons(self) -> None:
        running = self.running
        ready = self.action is PipAction.UNINSTALL or bool(self.specs())
        self.run_button.setEnabled(ready and not running)
        self.run_button.setDefault(not running)
        self.cancel_button.setVisible(running)
        self.close_button.setVisible(not running)
        for widget in (self.spec_edit, self.file_button, self.folder_button):
            widget.setEnabled(not running)

    def _choose_file(self) -> None:
        chooser = QFileDialog(self, "Choose a plugin file")
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chooser.setNameFilters(["Plugin packages (*.whl *.tar.gz *.zip)", "All files (*)"])
        chooser.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        chooser.fileSelected.connect(self._chosen)
        chooser.open()

    def _choose_folder(self) -> None:
        chooser = QFileDialog(self, "Choose a plugin's folder (with its pyproject.toml)")
        chooser.setFileMode(QFileDialog.FileMode.Directory)
        chooser.setOption(QFileDialog.Option.ShowDirsOnly)
        chooser.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        chooser.fileSelected.connect(self._chosen)
        chooser.open()

    def _chosen(self, path: str) -> None:
        self.spec_edit.setText(shlex.quote(path))

    def reject(self) -> None:
        """Escape stops pip if it runs (the dialog stays, showing so), else closes."""
        if self.task is not None:
            self.task.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window while pip runs stops pip, and the dialog stays to say so."""
        if self.task is not None:
            self.task.cancel()
            event.ignore()
            return
        super().closeEvent(event)

    async def aclose(self) -> None:
        """Stop pip and wait until it has ended (the application is quitting)."""
        self._closed = True
        task = self.task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])


def _last_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.splitlines()[-count:])
