"""The main window: a tab per chat, the status panel, menus and shortcuts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QToolButton,
    QWidget,
)

from valis_desktop.core.engine import Engine
from valis_desktop.core.plugin_installer import Installer
from valis_desktop.core.plugins import PluginRecord
from valis_desktop.core.session import Session
from valis_desktop.core.settings import Settings
from valis_desktop.core.store import Conversation, StoredMessage, history_from
from valis_desktop.ui.chat_tab import ChatTab, persona_icon
from valis_desktop.ui.conversations import Conversations
from valis_desktop.ui.history_dialog import HistoryDialog
from valis_desktop.ui.persona_editor import PersonaEditor
from valis_desktop.ui.plugins_dialog import PluginsDialog
from valis_desktop.ui.settings_dialog import SettingsDialog
from valis_desktop.ui.status_panel import StatusPanel, StatusRefresher

APP_TITLE = "Valis Desktop"


class MainWindow(QMainWindow):
    shutdown_finished = Signal()

    def __init__(
        self,
        engine: Engine,
        *,
        safe_mode: bool = False,
        problems: Sequence[str] = (),
        conversations: Conversations | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``problems`` are start-up problems to show (a settings file with invalid fields).
        With ``conversations``, chats are recorded, and ``restore()`` brings back the tabs."""
        super().__init__(parent)
        self.engine = engine
        self.conversations = conversations
        self.setWindowTitle(APP_TITLE + (" — safe mode" if safe_mode else ""))
        self.resize(1200, 800)
        self.setMinimumSize(640, 420)
        self._background: set[asyncio.Task[None]] = set()
        self._shutdown: asyncio.Task[None] | None = None
        self._shut_down = False
        self._problems: QLabel | None = None
        self._history: HistoryDialog | None = None
        self._plugins: PluginsDialog | None = None
        self.plugin_installer = Installer()
        """How the Plugins dialog runs pip (the running interpreter's environment)."""
        self._providers = set(engine.manager.provider_ids)
        engine.on_plugin_quarantined = self._plugin_quarantined

        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Chats")
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.setDocumentMode(True)
        self.tabs.tabCloseRequested.connect(self.request_close_tab)
        self.tabs.currentChanged.connect(self._tab_switched)
        self.tabs.tabBar().tabBarDoubleClicked.connect(self.rename_tab)
        self.tabs.tabBar().tabMoved.connect(lambda _from, _to: self._save_tab_order())
        new_tab = QToolButton(self.tabs)
        new_tab.setText("+")
        new_tab.setAccessibleName("New chat")
        new_tab.setToolTip("New chat (Ctrl+T)")
        new_tab.setAutoRaise(True)
        new_tab.clicked.connect(self.new_tab)
        self.tabs.setCornerWidget(new_tab, Qt.Corner.TopRightCorner)
        self.setCentralWidget(self.tabs)

        self.status_panel = StatusPanel(self)
        self.status_panel.reset_requested.connect(engine.manager.reset)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.status_panel)
        self.resizeDocks([self.status_panel], [270], Qt.Orientation.Vertical)
        self.status_refresher = StatusRefresher(engine.manager, self.tab_titles, self.status_panel)
        self._build_menus()
        self._report_problems(safe_mode, problems)
        if conversations is None:
            self.new_tab()

    # Tabs

    @property
    def chat_tabs(self) -> list[ChatTab]:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]  # type: ignore[misc]

    def current_tab(self) -> ChatTab | None:
        widget = self.tabs.currentWidget()
        return widget if isinstance(widget, ChatTab) else None

    def tab_titles(self) -> dict[str, str]:
        return {tab.session.id: tab.title for tab in self.chat_tabs}

    def new_tab(self) -> ChatTab:
        tab = self._add_tab(self.engine.open_session())
        self.tabs.setCurrentWidget(tab)
        tab.setFocus()
        return tab

    async def restore(self) -> None:
        """Bring back the tabs that were open, in order, each with its whole conversation."""
        assert self.conversations is not None
        for conversation, messages in await self.conversations.saved_tabs():
            self._reopen(conversation, messages)
        if self.tabs.count() == 0:
            self.new_tab()
        else:
            self.tabs.setCurrentIndex(self.tabs.count() - 1)

    async def open_conversation(self, conversation_id: str) -> ChatTab | None:
        """Switch to the conversation's tab, reopening it from the history if it is closed."""
        for tab in self.chat_tabs:
            if tab.session.id == conversation_id:
                self.tabs.setCurrentWidget(tab)
                return tab
        if self.conversations is None:
            return None
        loaded = await self.conversations.load(conversation_id)
        if loaded is None:
            return None
        tab = self._reopen(*loaded)
        self.tabs.setCurrentWidget(tab)
        self._save_tab_order()
        return tab

    def _reopen(self, conversation: Conversation, messages: list[StoredMessage]) -> ChatTab:
        session = self.engine.open_session(
            session_id=conversation.id,
            chain=conversation.chain or None,
            persona_id=conversation.persona_id,
            history=history_from(messages),
        )
        tab = self._add_tab(session, title=conversation.title)
        tab.restore_history(messages)
        return tab

    def _add_tab(self, session: Session, title: str = "") -> ChatTab:
        recorder = self.conversations.recorder if self.conversations else None
        tab = ChatTab(self.engine, session, self.tabs, recorder=recorder, title=title)
        index = self.tabs.addTab(tab, tab.title)
        tab.title_changed.connect(lambda _title, tab=tab: self._show_title(tab))
        tab.busy_changed.connect(lambda _busy, tab=tab: self._show_title(tab))
        tab.persona_changed.connect(lambda _persona, tab=tab: self._show_title(tab))
        self._show_title(tab)
        if self.conversations is not None:
            self.conversations.follow(tab, index)
        return tab

    def _save_tab_order(self) -> None:
        if self.conversations is not None:
            self.conversations.tab_order([tab.session.id for tab in self.chat_tabs])

    def request_close_tab(self, index: int) -> None:
        """Close a tab; a busy one asks first, since closing cancels its requests."""
        tab = self.tabs.widget(index)
        if not isinstance(tab, ChatTab):
            return
        if not tab.busy:
            self.close_tab(tab)
            return
        self._confirm(
            f"“{tab.title}” is still answering",
            "Closing it stops the answer and cancels its queued messages.",
            "Close chat",
            lambda: self.close_tab(tab),
        )

    def close_tab(self, tab: ChatTab, *, deleted: bool = False) -> None:
        """Close ``tab``, cancelling its requests; its conversation stays in the history
        (unless it was ``deleted`` from there)."""
        index = self.tabs.indexOf(tab)
        if index < 0:
            return
        self.tabs.removeTab(index)
        if self.conversations is not None:
            if deleted:
                self.conversations.recorder.forget(tab.session)
            else:
                self.conversations.closed(tab.session.id)
            self._save_tab_order()
        task = self._in_background(tab.aclose())
        task.add_done_callback(lambda _task: tab.deleteLater())
        if self.tabs.count() == 0 and not self._shut_down and self._shutdown is None:
            self.new_tab()

    def show_history(self) -> None:
        """The History: every conversation, searchable; open, delete, export, import."""
        if self.conversations is None:
            return
        if self._history is None:
            self._history = HistoryDialog(self.conversations.store, self)
            self._history.open_requested.connect(self._open_from_history)
            self._history.deleted.connect(self._deleted_from_history)
        self._history.show()
        self._history.raise_()
        self._history.activateWindow()

    def _open_from_history(self, conversation_id: str, message_id: str) -> None:
        async def open_and_scroll() -> None:
            tab = await self.open_conversation(conversation_id)
            if tab is not None and message_id:
                tab.view.scroll_to_message(message_id)

        self._in_background(open_and_scroll())

    def _deleted_from_history(self, conversation_id: str) -> None:
        for tab in self.chat_tabs:
            if tab.session.id == conversation_id:
                self.close_tab(tab, deleted=True)

    def _in_background(self, work: Coroutine[object, object, None]) -> asyncio.Task[None]:
        """Run ``work`` as a task that shutdown waits for."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def rename_tab(self, index: int) -> None:
        tab = self.tabs.widget(index)
        if not isinstance(tab, ChatTab):
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename chat")
        dialog.setLabelText("Name of this chat:")
        dialog.setTextValue(tab.title)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.textValueSelected.connect(tab.rename)
        dialog.open()

    def cycle_tabs(self, step: int) -> None:
        count = self.tabs.count()
        if count:
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % count)

    def open_personas(self) -> None:
        """The persona editor: built-in, plugin and the user's own personas."""
        if self.engine.library is None:
            return
        editor = PersonaEditor(self.engine.library, self)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.saved.connect(lambda _id: self._refresh_personas())
        editor.deleted.connect(lambda _id: self._refresh_personas())
        editor.open()

    def _refresh_personas(self) -> None:
        for tab in self.chat_tabs:
            tab.refresh_personas()
            self._show_title(tab)

    def open_plugins(self) -> PluginsDialog:
        """The plugins, their state and errors; install, remove, enable or disable one without
        a restart. Plugins installed or removed meanwhile (from a terminal) are found now."""
        if self.engine.discover_plugins():
            self._providers_changed()
        if self._plugins is None:
            self._plugins = PluginsDialog(self.engine, self, installer=self.plugin_installer)
            self._plugins.changed.connect(self._providers_changed)
        else:
            self._plugins.refresh()
        self._plugins.open()
        return self._plugins

    def _plugin_quarantined(self, record: PluginRecord) -> None:
        """A provider raised something no provider should, and its plugin was taken out."""
        self.statusBar().showMessage(
            f"Plugin “{record.name}” failed while answering ({record.error_summary}) and was "
            "set aside; Chat ▸ Plugins… shows why.",
            60_000,
        )
        if self._plugins is not None:
            self._plugins.refresh()
        self._providers_changed()

    def _providers_changed(self) -> None:
        """Plugins or settings changed: providers and personas may have come or gone. Show it
        in the panel and the tabs, and tell each chat whose chain names one."""
        self.status_refresher.refresh()
        self._refresh_personas()
        now = set(self.engine.manager.provider_ids)
        gone, back = self._providers - now, now - self._providers
        self._providers = now
        for tab in self.chat_tabs:
            chain = tab.session.chain
            for provider_id in (p for p in chain if p in gone):
                tab.view.add_notice(
                    f"Provider {provider_id} is no longer available; this chat goes on with "
                    "the rest of its chain."
                )
            for provider_id in (p for p in chain if p in back):
                tab.view.add_notice(f"Provider {provider_id} is available (again).")

    def open_settings(self) -> None:
        providers = [(s.id, s.display_name) for s in self.engine.manager.snapshot().providers]
        dialog = SettingsDialog(self.engine.host.settings_forms(), providers=providers, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(self._settings_saved)
        dialog.open()

    def _settings_saved(self, settings: Settings) -> None:
        self.engine.apply_settings(settings)
        self._providers_changed()
        if self._problems is not None:
            self._problems.hide()

    # Shutdown: stop the sessions, close the providers, then let the window close.

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shut_down:
            event.accept()
            return
        event.ignore()
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self.shutdown())

    async def shutdown(self) -> None:
        """Stop every chat, close the providers, then close the window. Recording stops
        first, so what was still running is found unfinished at the next start."""
        self.status_refresher.stop()
        self.engine.on_plugin_quarantined = None
        if self._history is not None:
            self._history.hide()  # cancels its searches and loads
        if self._plugins is not None:
            await self._plugins.aclose()  # stops pip
        if self.conversations is not None:
            await self.conversations.stop_recording()
        for tab in self.chat_tabs:
            self.tabs.removeTab(self.tabs.indexOf(tab))
            await tab.aclose()
        if self._background:
            await asyncio.wait(set(self._background))
        await self.engine.aclose()
        if self.conversations is not None:
            await self.conversations.aclose()
        self._shut_down = True
        self.close()
        self.shutdown_finished.emit()

    # Helpers

    def _build_menus(self) -> None:
        chat = self.menuBar().addMenu("&Chat")
        self._action(chat, "&New chat", "Ctrl+T", self.new_tab)
        self._action(
            chat,
            "&Close chat",
            "Ctrl+W",
            lambda: self.request_close_tab(self.tabs.currentIndex()),
        )
        self._action(chat, "&Rename chat…", "F2", lambda: self.rename_tab(self.tabs.currentIndex()))
        chat.addSeparator()
        self._action(chat, "Ne&xt chat", "Ctrl+Tab", lambda: self.cycle_tabs(1))
        self._action(chat, "Pre&vious chat", "Ctrl+Shift+Tab", lambda: self.cycle_tabs(-1))
        chat.addSeparator()
        if self.conversations is not None:
            self._action(chat, "&History…", "Ctrl+H", self.show_history)
        if self.engine.library is not None:
            self._action(chat, "&Personas…", "", self.open_personas)
        self._action(chat, "P&lugins…", "", self.open_plugins)
        self._action(chat, "&Settings…", "Ctrl+,", self.open_settings)
        chat.addSeparator()
        self._action(chat, "&Quit", "Ctrl+Q", self.close)
        view = self.menuBar().addMenu("&View")
        toggle = self.status_panel.toggleViewAction()
        toggle.setText("&Status panel")
        toggle.setShortcut(QKeySequence("Ctrl+Shift+S"))
        view.addAction(toggle)

    def _action(
        self,
        menu: QMenu,
        text: str,
        shortcut: str,
        slot: Callable[[], object],
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _confirm(self, text: str, detail: str, accept: str, on_accept: Callable[[], None]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, APP_TITLE, text, parent=self)
        box.setInformativeText(detail)
        yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: on_accept() if button is yes else None)
        box.open()

    def _report_problems(self, safe_mode: bool, problems: Sequence[str]) -> None:
        notes = ["Safe mode: built-in plugins only."] if safe_mode else []
        notes += problems
        for record in self.engine.host.records.values():
            if record.error:
                notes.append(f"Plugin “{record.name}” was not loaded: {record.error_summary}")
            notes += [f"Plugin “{record.name}”: {problem}" for problem in record.problems]
        if notes:
            self._problems = QLabel("  ".join(notes), self)
            self._problems.setAccessibleName("Start-up problems")
            self._problems.setTextFormat(Qt.TextFormat.PlainText)
            self._problems.setWordWrap(True)
            self.statusBar().addWidget(self._problems, 1)

    def _show_title(self, tab: ChatTab) -> None:
        index = self.tabs.indexOf(tab)
        if index >= 0:
            self.tabs.setTabText(index, ("● " if tab.busy else "") + tab.title)
            persona = tab.session.persona
            if persona is not None:  # as the library has it now (the user may have edited it)
                persona = self.engine.personas.get(persona.id, persona)
            self.tabs.setTabIcon(index, persona_icon(persona))
            self.tabs.setTabToolTip(
                index, f"{tab.title} — {persona.name}" if persona else tab.title
            )

    def _tab_switched(self, index: int) -> None:
        tab = self.tabs.widget(index)
        if isinstance(tab, ChatTab):
            tab.setFocus()
