"""The Plugins dialog: every plugin with its state and details; installing, removing, enabling
and disabling one without a restart.

Enabling or installing loads the plugin and adds its providers and personas at once; disabling
or uninstalling takes them out (answers in progress finish). Python cannot unload code, so a
plugin taken out while running keeps its module imported until the application restarts, and the
dialog says so.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.core.engine import Engine
from valis_desktop.core.plugin_installer import Installer
from valis_desktop.core.plugins import PluginRecord, PluginState
from valis_desktop.ui.plugin_install import PipAction, PipRunDialog

_NAME_ROLE = Qt.ItemDataRole.UserRole


def plugin_summary(record: PluginRecord) -> str:
    """One line for the list: name, version, state (a quarantined plugin's error), built-in."""
    parts = [record.name]
    if record.version:
        parts.append(record.version)
    if record.builtin:
        parts.append("(built-in)")
    state = state_text(record)
    if record.restart_note and record.state is not PluginState.QUARANTINED:
        state += " (restart to finish)"
    return f"{' '.join(parts)} — {state}"


def state_text(record: PluginRecord) -> str:
    """The plugin's state, with a quarantined plugin's error."""
    if record.state is PluginState.QUARANTINED and record.error_summary:
        return f"{record.state}: {record.error_summary}"
    return str(record.state)


class PluginsDialog(QDialog):
    """Lists ``engine.host.records``; Enable/Disable calls ``engine.set_plugin_enabled``,
    Install and Uninstall run pip through ``installer`` and then ``engine.discover_plugins``."""

    changed = Signal()
    """Plugins were enabled, disabled, installed or removed: providers and personas may have
    joined or left the engine."""

    def __init__(
        self, engine: Engine, parent: QWidget | None = None, *, installer: Installer | None = None
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.installer = installer or Installer()
        self.pip_dialog: PipRunDialog | None = None
        self.confirmation: QMessageBox | None = None
        self.setWindowTitle("Plugins")
        self.setObjectName("pluginsDialog")

        self.plugin_list = QListWidget()
        self.plugin_list.setAccessibleName("Plugins")
        self.plugin_list.setAccessibleDescription(
            "Every plugin with its version and state: loaded, disabled or quarantined."
        )
        self.plugin_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        list_label = QLabel("&Plugins:")
        list_label.setBuddy(self.plugin_list)

        self.name_label = self._value("Name")
        self.distribution_label = self._value("Distribution")
        self.version_label = self._value("Version")
        self.state_label = self._value("State")
        self.providers_label = self._value("Providers registered")
        self.description_label = self._value("Description")
        self.homepage_label = self._value("Home page")
        self.homepage_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.homepage_label.setTextFormat(Qt.TextFormat.RichText)
        self.homepage_label.setOpenExternalLinks(True)
        self.hooks_label = self._value("Hooks implemented")
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        self.note_label.setAccessibleName("Note")
        self.error_label = QLabel("E&rror:")
        self.traceback_view = QPlainTextEdit()
        self.traceback_view.setReadOnly(True)
        self.traceback_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.traceback_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.traceback_view.setAccessibleName("Error traceback")
        self.traceback_view.setTabChangesFocus(True)
        self.error_label.setBuddy(self.traceback_view)
        self.toggle_button = QPushButton("&Disable")
        self.toggle_button.setAccessibleName("Disable plugin")
        self.toggle_button.clicked.connect(self._toggle)
        self.retry_button = QPushButton("Try &again")
        self.retry_button.setToolTip("Load this plugin again (after fixing what it needed).")
        self.retry_button.clicked.connect(self._retry)
        self.uninstall_button = QPushButton("&Uninstall…")
        self.uninstall_button.setToolTip("Remove this plugin's distribution with pip.")
        self.uninstall_button.clicked.connect(self.confirm_uninstall)
        self.install_button = QPushButton("&Install…")
        self.install_button.setAccessibleName("Install a plugin")
        self.install_button.setToolTip(
            "Install a plugin with pip: from the package index, a folder, a file or a URL."
        )
        self.install_button.clicked.connect(self.open_install)
        self.failure_label = QLabel()
        self.failure_label.setWordWrap(True)
        self.failure_label.setAccessibleName("Problem")
        self.failure_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.failure_label.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for title, label in (
            ("Name:", self.name_label),
            ("Description:", self.description_label),
            ("Distribution:", self.distribution_label),
            ("Version:", self.version_label),
            ("Home page:", self.homepage_label),
            ("State:", self.state_label),
            ("Providers:", self.providers_label),
            ("Hooks:", self.hooks_label),
        ):
            form.addRow(title, label)
        buttons_row = QHBoxLayout()
        buttons_row.addWidget(self.retry_button)
        buttons_row.addWidget(self.toggle_button)
        buttons_row.addWidget(self.uninstall_button)
        buttons_row.addStretch(1)

        details = QWidget()
        details.setAccessibleName("Plugin details")
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addLayout(form)
        details_layout.addWidget(self.note_label)
        details_layout.addLayout(buttons_row)
        details_layout.addWidget(self.failure_label)
        details_layout.addWidget(self.error_label)
        details_layout.addWidget(self.traceback_view, 1)
        details_layout.addStretch(0)

        list_box = QWidget()
        list_layout = QVBoxLayout(list_box)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addWidget(list_label)
        list_layout.addWidget(self.plugin_list, 1)
        install_row = QHBoxLayout()
        install_row.addWidget(self.install_button)
        install_row.addStretch(1)
        list_layout.addLayout(install_row)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(list_box)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)

        self.button_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.button_box.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.button_box)

        QWidget.setTabOrder(self.plugin_list, self.install_button)
        QWidget.setTabOrder(self.install_button, self.retry_button)
        QWidget.setTabOrder(self.retry_button, self.toggle_button)
        QWidget.setTabOrder(self.toggle_button, self.uninstall_button)
        QWidget.setTabOrder(self.uninstall_button, self.traceback_view)
        QWidget.setTabOrder(self.traceback_view, self.button_box)

        self.plugin_list.currentItemChanged.connect(self._show_current)
        self.resize(880, 520)
        self.refresh()
        self.plugin_list.setFocus()

    # The list and the details.

    def refresh(self) -> None:
        """Show the host's records again, keeping the current plugin selected."""
        current = self.current_name()
        self.plugin_list.blockSignals(True)
        self.plugin_list.clear()
        for record in self.engine.host.records.values():
            item = QListWidgetItem(plugin_summary(record))
            item.setData(_NAME_ROLE, record.name)
            item.setToolTip(plugin_summary(record))
            self.plugin_list.addItem(item)
            if record.name == current:
                self.plugin_list.setCurrentItem(item)
        self.plugin_list.blockSignals(False)
        if self.plugin_list.currentItem() is None and self.plugin_list.count():
            self.plugin_list.setCurrentRow(0)
        else:
            self._show_current()

    def current_name(self) -> str | None:
        item = self.plugin_list.currentItem()
        return str(item.data(_NAME_ROLE)) if item is not None else None

    def select(self, name: str) -> None:
        """Make the plugin ``name`` the current one."""
        for row in range(self.plugin_list.count()):
            item = self.plugin_list.item(row)
            if item.data(_NAME_ROLE) == name:
                self.plugin_list.setCurrentItem(item)
                return
        raise KeyError(name)

    def _current_record(self) -> PluginRecord | None:
        name = self.current_name()
        return self.engine.host.records.get(name) if name is not None else None

    def _show_current(self, *_: object) -> None:
        record = self._current_record()
        self.failure_label.hide()
        if record is None:
            for label in self._values():
                label.clear()
            self.toggle_button.hide()
            self.retry_button.hide()
            self.uninstall_button.hide()
            self.note_label.hide()
            self._show_traceback("")
            return
        origin = "built into Valis Desktop" if record.builtin else record.distribution or "—"
        self.name_label.setText(record.name)
        self.distribution_label.setText(origin)
        self.version_label.setText(record.version or "—")
        self.state_label.setText(state_text(record))
        self.providers_label.setText(", ".join(record.providers) or "none")
        self.description_label.setText(record.description or "—")
        self.homepage_label.setText(_link(record.homepage))
        self.hooks_label.setText(", ".join(record.hooks) or "—")
        self.note_label.setText(self._note(record))
        self.note_label.setVisible(bool(self.note_label.text()))
        removable = not record.builtin and record.state is not PluginState.UNINSTALLED
        self.toggle_button.setVisible(removable)
        self.retry_button.setVisible(
            removable and record.state is PluginState.QUARANTINED and record.entry_point is not None
        )
        self.retry_button.setAccessibleName(f"Try loading plugin {record.name} again")
        self.uninstall_button.setVisible(removable and bool(record.distribution))
        self.uninstall_button.setAccessibleName(f"Uninstall plugin {record.name}")
        enable = record.state is PluginState.DISABLED
        verb = "Enable" if enable else "Disable"
        self.toggle_button.setText(f"&{verb}")
        self.toggle_button.setAccessibleName(f"{verb} plugin {record.name}")
        self.toggle_button.setToolTip(
            "Load this plugin now and add its providers."
            if enable
            else "Take this plugin's providers out now and keep it from loading."
        )
        self._show_traceback(record.error if record.state is PluginState.QUARANTINED else "")

    def _note(self, record: PluginRecord) -> str:
        if record.builtin:
            return "Built-in plugins are part of Valis Desktop and cannot be disabled."
        if record.restart_note:
            return record.restart_note
        if record.state is PluginState.DISABLED and record.imported:
            return (
                "Disabled: its providers are gone. Its code stays loaded until Valis Desktop "
                "restarts — restart to finish removing it."
            )
        if record.state is PluginState.QUARANTINED:
            return (
                "Quarantined: it failed and was set aside; the other plugins work. Try again "
                "once it is fixed (update it with Install…), or disable it to keep it from "
                "loading."
            )
        return ""

    def _show_traceback(self, text: str) -> None:
        self.traceback_view.setPlainText(text)
        self.traceback_view.setVisible(bool(text))
        self.error_label.setVisible(bool(text))

    # Enabling and disabling.

    def _retry(self) -> None:
        self._set_enabled(True)

    def _toggle(self) -> None:
        record = self._current_record()
        if record is not None:
            self._set_enabled(record.state is PluginState.DISABLED)

    def _set_enabled(self, enable: bool) -> None:
        record = self._current_record()
        if record is None or record.builtin:
            return
        try:
            self.engine.set_plugin_enabled(record.name, enable)
        except (ValueError, OSError) as error:
            self.refresh()
            self.failure_label.setText(f"Could not {'enable' if enable else 'disable'}: {error}")
            self.failure_label.show()
            self.changed.emit()  # the plugin may have changed even if saving failed
            return
        self.refresh()
        self.changed.emit()

    # Installing and removing.

    def open_install(self) -> None:
        """The install dialog (pip's output live; Cancel stops it)."""
        self._open_pip(PipRunDialog(PipAction.INSTALL, self.installer, self._discover, parent=self))

    def confirm_uninstall(self) -> None:
        """Ask, then uninstall the current plugin's distribution."""
        record = self._current_record()
        if record is None or record.builtin or not record.distribution:
            return
        others = [
            other.name
            for other in self.engine.host.records.values()
            if other.distribution == record.distribution and other is not record
        ]
        text = f"Uninstall {record.distribution} {record.version}?".replace(" ?", "?")
        details = ["Its providers leave now; chats using them go on with the rest of their chains."]
        if others:
            details.append(f"It also holds the plugins {', '.join(others)}, which go too.")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Uninstall plugin",
            text,
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(" ".join(details))
        yes = box.addButton("&Uninstall", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(
            lambda button: self.uninstall(record.distribution) if button is yes else None
        )
        self.confirmation = box
        box.open()

    def uninstall(self, distribution: str) -> None:
        """Uninstall ``distribution`` now, without asking."""
        dialog = PipRunDialog(
            PipAction.UNINSTALL,
            self.installer,
            self._discover,
            distribution=distribution,
            parent=self,
        )
        if self._open_pip(dialog):
            dialog.start()

    def _open_pip(self, dialog: PipRunDialog) -> bool:
        """Show ``dialog``, unless pip runs already: then that one comes to the front."""
        if self.pip_dialog is not None and self.pip_dialog.running:
            dialog.deleteLater()
            self.pip_dialog.raise_()
            self.pip_dialog.activateWindow()
            return False
        if self.pip_dialog is not None:
            self.pip_dialog.deleteLater()
        self.pip_dialog = dialog
        dialog.open()
        return True

    def _discover(self) -> str:
        """Find what pip changed; show it and say it in a sentence or two."""
        if self.engine.host.safe_mode:
            return (
                "Safe mode loads only the built-in plugins: the change shows at the next normal "
                "start."
            )
        changed = self.engine.discover_plugins()
        self.refresh()
        present = [record for record in changed if record.name in self.engine.host.records]
        if present:
            self.select(present[0].name)
        if changed:
            self.changed.emit()
        return "\n".join(_change(record, self.engine) for record in changed)

    async def aclose(self) -> None:
        """Stop pip if it runs (the application is quitting)."""
        if self.pip_dialog is not None:
            await self.pip_dialog.aclose()

    def _value(self, name: str) -> QLabel:
        label = QLabel()
        label.setAccessibleName(name)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _values(self) -> list[QLabel]:
        return [
            self.name_label,
            self.distribution_label,
            self.version_label,
            self.state_label,
            self.providers_label,
            self.description_label,
            self.homepage_label,
            self.hooks_label,
        ]


def _link(url: str) -> str:
    """A clickable home page (web addresses only), or a dash."""
    if not url.startswith(("https://", "http://")):
        return html.escape(url) or "—"
    escaped = html.escape(url, quote=True)
    return f'<a href="{escaped}">{escaped}</a>'


def _change(record: PluginRecord, engine: Engine) -> str:
    """One line about a plugin that pip added, removed or updated."""
    if record.name not in engine.host.records:
        return f"{record.name} was removed."
    if record.restart_note:
        return f"{record.name}: {record.restart_note}"
    if record.state is PluginState.LOADED:
        providers = ", ".join(record.providers) or "none"
        return f"{record.name} {record.version} is ready — providers: {providers}."
    if record.state is PluginState.DISABLED:
        return f"{record.name} {record.version} is installed but disabled; enable it to use it."
    return f"{record.name} could not load: {record.error_summary}"
