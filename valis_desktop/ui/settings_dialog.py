"""The Settings dialog: engine limits, the default chain and the plugins' provider instances.

It edits the settings file as written (``read_raw``) and rewrites it only on Save, after
validating all of it (``save_settings``); each problem is shown beneath its field. API keys go to
the keychain on Save, never to the file. The General page's own editors are in
``general_settings``, the plugins' provider instances in ``instance_editor``.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keyring.errors
from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.api import SettingsForm
from valis_desktop.core import secrets
from valis_desktop.core.settings import (
    BreakerSettings,
    EngineSettings,
    Settings,
    read_raw,
    save_settings,
    settings_path,
    validate_leniently,
)
from valis_desktop.ui.chain_editor import ChainList
from valis_desktop.ui.form_layout import group_box, scroll_area, wrapped_label
from valis_desktop.ui.general_settings import LimitRows
from valis_desktop.ui.instance_editor import Instance, PluginInstances
from valis_desktop.ui.model_form import FieldError, ModelForm, error_label, error_messages

_LABELS = {
    "global_limit": "Answers at once, all providers",
    "first_chunk_timeout": "Wait for an answer to start (s)",
    "gap_timeout": "Longest pause within an answer (s)",
    "queue_limit": "Messages waiting per chat",
    "failure_threshold": "Failures in a row before a pause",
    "base_open_seconds": "First pause (s)",
    "max_open_seconds": "Longest pause (s)",
}
_HINTS = {
    "global_limit": "Across all chats.",
    "first_chunk_timeout": "Then the next provider in the chain is tried.",
    "queue_limit": "Typed ahead while a chat is answering.",
    "base_open_seconds": "Doubled each time the provider fails again.",
}


class SettingsDialog(QDialog):
    """Edits the settings file; ``saved`` carries the new ``Settings`` after a Save.

    ``forms`` are the plugins' settings forms (``PluginHost.settings_forms()``), ``providers``
    the installed providers as (id, display name), ``path`` the settings file.
    """

    saved = Signal(object)

    def __init__(
        self,
        forms: Sequence[SettingsForm],
        *,
        providers: Sequence[tuple[str, str]] = (),
        path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.path = path or settings_path()
        self._raw = read_raw(self.path)
        self._installed = dict(providers)
        engine = _table(self._raw, "engine")
        mnemonics = {"g", "p", "s", "c", "u", "d", "a"}
        self.banner = wrapped_label(self._load_problems(), self)
        self.banner.setAccessibleName("Problems in the settings file")
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        banner = QFrame(self)
        banner.setFrameShape(QFrame.Shape.StyledPanel)
        banner.setVisible(bool(self.banner.text()))
        icon = QLabel(banner)
        icon.setPixmap(self._warning().pixmap(32, 32))
        row = QHBoxLayout(banner)
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.banner, 1)
        chain = engine.get("default_chain", EngineSettings().default_chain)
        self.chain = ChainList(
            [str(p) for p in chain] if isinstance(chain, list) else [],
            parent=self,
            accessible_name="Provider chain for new chats, in the order they are tried",
        )
        lines = self.chain.list.fontMetrics().lineSpacing()
        self.chain.list.setMinimumHeight(lines * 5)
        self.chain.list.setMaximumHeight(lines * 12)
        self.chain_error = error_label(self)
        self.limits = LimitRows(self._raw.get("providers"), self)
        self.engine_form = ModelForm(
            EngineSettings,
            engine,
            exclude={"default_chain", "breaker"},
            labels=_LABELS,
            hints=_HINTS,
            mnemonics=mnemonics,
            parent=self,
        )
        self.breaker_form = ModelForm(
            BreakerSettings,
            _table(engine, "breaker"),
            labels=_LABELS,
            hints=_HINTS,
            mnemonics=mnemonics,
            parent=self,
        )
        plugins = _table(self._raw, "plugins")
        self.plugins = [
            PluginInstances(form, _table(plugins, form.plugin), self._taken, self) for form in forms
        ]
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.addTab(scroll_area(self._general_page()), "&General")
        self.tabs.addTab(scroll_area(self._providers_page()), "&Providers")
        self.status = error_label(self)
        self.status.setAccessibleName("Why the settings cannot be saved")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        for widget in (self.chain, self.engine_form, self.breaker_form, self.limits, *self.plugins):
            widget.changed.connect(self._revalidate)  # type: ignore[attr-defined]
        for group in self.plugins:
            group.changed.connect(self._refresh_known)
        self._refresh_known()
        self._revalidate()
        self.resize(900, 640)

    def compose(self) -> tuple[dict[str, Any], list[FieldError], dict[int, str]]:
        """The file as it would be saved; problems of fields that cannot be read; problems of
        per-provider limit rows."""
        old_engine = _table(self._raw, "engine")
        engine, inner = self.engine_form.read()
        breaker, breaker_errors = self.breaker_form.read()
        errors = [(("engine", *loc), m) for loc, m in inner]
        errors += [(("engine", "breaker", *loc), m) for loc, m in breaker_errors]
        if breaker or "breaker" in old_engine:
            engine["breaker"] = breaker
        chain = self.chain.chain()
        if "default_chain" in old_engine or chain != EngineSettings().default_chain:
            engine["default_chain"] = chain
        providers, rows = self.limits.read()
        plugins = copy.deepcopy(_table(self._raw, "plugins"))
        if "disabled" in plugins and not _strings(plugins["disabled"]):
            del plugins["disabled"]  # not editable here; invalid, so it falls back to its default
        for group in self.plugins:
            if group.touched:
                table = _table(plugins, group.form.plugin)
                table["instances"] = [instance.table for instance in group.instances]
                plugins[group.form.plugin] = table
        raw = {"engine": engine, "providers": providers, "plugins": plugins}
        return {key: value for key, value in raw.items() if value}, errors, rows

    def save(self) -> bool:
        """Validate and write the file, then store the keys; whether it was saved."""
        if not self._revalidate():
            self._focus_first_error()
            return False
        raw = self.compose()[0]
        try:
            # Rewriting drops the file's comments: only do it when something changed.
            unchanged = raw == self._raw and self.path.exists()
            settings = Settings.model_validate(raw) if unchanged else save_settings(raw, self.path)
        except ValidationError as error:
            self._show_errors(error_messages(error), {})
            return False
        except OSError as error:
            self._say(f"{self.path} could not be written ({error}); nothing was saved.")
            return False
        failures = self._store_secrets()
        self.saved.emit(settings)
        if failures:
            self._say(f"The settings were saved, but the keychain refused a key: {failures}.")
            return False
        self.accept()
        return True

    def done(self, result: int) -> None:
        """Closing the dialog closes an instance editor still open, and stops its test."""
        for group in self.plugins:
            if group.editor is not None:
                group.editor.reject()
        super().done(result)

    def _general_page(self) -> QWidget:
        page = QWidget(self)
        grid = QGridLayout(page)
        chain_box = QWidget(page)
        chain_layout = QVBoxLayout(chain_box)
        chain_layout.setContentsMargins(0, 0, 0, 0)
        chain_layout.addWidget(self.chain)
        chain_layout.addWidget(self.chain_error)
        chain = group_box(
            "Provider chain for new chats",
            chain_box,
            "New chats try the checked providers from the top; if one fails before answering, "
            "the next is tried. Open chats keep their own chain.",
        )
        breaker = group_box(
            "Circuit breaker",
            self.breaker_form,
            "A provider that keeps failing is paused, so that messages go straight to the next "
            "one in the chain.",
        )
        # Tab follows the order in which the groups join the page: down the left column first.
        grid.addWidget(chain, 0, 0)
        grid.addWidget(group_box("Answers at once, per provider", self.limits), 1, 0)
        grid.addWidget(group_box("Limits and timeouts", self.engine_form), 0, 1)
        grid.addWidget(breaker, 1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 1)
        return page

    def _providers_page(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        layout.addWidget(
            wrapped_label(
                "Provider instances you add or change here are used as soon as you save "
                "(answers in progress finish first). API keys are kept in the system keychain, "
                "never in the settings file.",
                page,
            )
        )
        if not self.plugins:
            layout.addWidget(wrapped_label("No installed plugin has settings to edit here.", page))
        for group in self.plugins:
            layout.addWidget(group)
        layout.addStretch(1)
        return page

    def _load_problems(self) -> str:
        if self.path.exists() and not self._raw:
            try:
                tomllib.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
                return (
                    f"{self.path} could not be read ({error}). The defaults are shown; saving "
                    "replaces the file."
                )
        problems = validate_leniently(copy.deepcopy(self._raw))[1]
        if not problems:
            return ""
        listed = "\n".join(f"• {problem}" for problem in problems)
        return (
            "The settings file has problems. Until they are fixed, Valis Desktop uses the "
            "default for each; the fields are marked, and the file stays as it is until you "
            f"save.\n{listed}"
        )

    def _revalidate(self) -> bool:
        raw, errors, rows = self.compose()
        try:
            Settings.model_validate(raw)
        except ValidationError as error:
            errors += error_messages(error)
        self._show_errors(errors, rows)
        valid = not errors and not rows
        self.save_button.setEnabled(valid)
        return valid

    def _show_errors(self, errors: list[FieldError], rows: Mapping[int, str]) -> None:
        engine: list[FieldError] = []
        breaker: list[FieldError] = []
        chain: list[str] = []
        providers: dict[str, str] = {}
        elsewhere: list[FieldError] = []
        for loc, message in errors:
            if loc[:2] == ("engine", "breaker"):
                breaker.append((loc[2:], message))
            elif loc[:2] == ("engine", "default_chain"):
                chain.append(message)
            elif loc[:1] == ("engine",):
                engine.append((loc[1:], message))
            elif loc[:1] == ("providers",) and len(loc) > 1:
                providers.setdefault(str(loc[1]), message)
            else:
                elsewhere.append((loc, message))
        self.engine_form.show_errors(engine)
        self.breaker_form.show_errors(breaker)
        self.chain_error.setText(chain[0] if chain else "")
        self.chain_error.setVisible(bool(chain))
        self.limits.show_errors(rows, providers)
        self._say("\n".join(f"{'.'.join(map(str, loc))}: {m}" for loc, m in elsewhere))
        invalid = bool(errors or rows)
        self.tabs.setTabIcon(0, self._warning() if invalid else QIcon())
        if invalid and not elsewhere:
            self._say("Fix the fields marked in red on the General page to save.")

    def _warning(self) -> QIcon:
        return self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _focus_first_error(self) -> None:
        self.tabs.setCurrentIndex(0)
        if not (self.engine_form.focus_first_error() or self.breaker_form.focus_first_error()):
            self.chain.list.setFocus()

    def _refresh_known(self) -> None:
        labels = {
            pid: f"{name} ({pid})" if name != pid else pid for pid, name in self._installed.items()
        }
        for group in self.plugins:
            for instance in group.instances:
                labels.setdefault(instance.id, f"{instance.id} (once saved)")
        labels.pop("", None)
        self.chain.set_known(labels)
        self.limits.set_known(sorted(labels))

    def _taken(self, editing: Instance | None) -> set[str]:
        """Provider ids an instance may not take: built-in providers' and other instances'."""
        configured = {pid for group in self.plugins for pid in group.original_ids}
        others = {i.id for group in self.plugins for i in group.instances if i is not editing}
        return (set(self._installed) - configured) | others

    def _store_secrets(self) -> list[str]:
        """Apply the keys typed, removed, copied with a duplicate, moved with a new id, or
        dropped with their instance. Keys to copy are read before anything changes."""
        failures: list[str] = []
        for group in self.plugins:
            plugin, instances = group.form.plugin, group.instances
            if not (group.touched and group.form.secret_field and secrets.available()):
                continue
            try:
                copies = {
                    i.id: i.stored_under
                    for i in instances
                    if i.stored_under not in (None, i.id) and not i.new_secret
                }
                keys = {s: secrets.read_secret(plugin, s) for s in copies.values() if s}
                for instance in instances:
                    key = instance.new_secret or keys.get(copies.get(instance.id) or "")
                    if instance.remove_secret and not instance.new_secret:
                        secrets.delete_secret(plugin, instance.id)
                    elif key is not None:
                        secrets.store_secret(plugin, instance.id, key)
                    instance.stored_under, instance.new_secret = instance.id, None
                    instance.remove_secret = False
                for dropped in group.original_ids - {i.id for i in instances}:
                    secrets.delete_secret(plugin, dropped)
                group.original_ids = {i.id for i in instances}
            except keyring.errors.KeyringError as error:
                failures.append(f"{group.form.title} ({type(error).__name__})")
        return failures


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
