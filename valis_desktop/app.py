"""The composition root: one QApplication, a qasync event loop, the engine and the window."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import qasync  # type: ignore[import-untyped]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from valis_desktop import __version__
from valis_desktop.core.engine import Engine
from valis_desktop.core.settings import load_settings
from valis_desktop.core.store import Recorder, Recovery, Store, StoreError
from valis_desktop.ui.conversations import Conversations
from valis_desktop.ui.main_window import APP_TITLE, MainWindow


def create_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_TITLE)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Valis Desktop")
    app.setDesktopFileName("valis-desktop")
    # The window's shutdown (stop chats, close providers) decides when the loop ends.
    app.setQuitOnLastWindowClosed(False)
    return app


async def run_window(
    engine: Engine, *, safe_mode: bool, problems: list[str], exit_when_shown: bool = False
) -> None:
    """Open the conversation store, show the main window with the tabs that were open, and
    return once it has shut down in order."""
    try:
        store = await Store.open()
    except StoreError as error:
        # Never risk the user's conversations: run without saving, and say so loudly.
        problems = [*problems, f"Conversations are NOT being saved: {error}"]
        conversations = None
    else:
        recovery = await store.recover()
        problems = [*problems, *_store_notes(store, recovery)]
        conversations = Conversations(store, Recorder(store, clock=engine.manager.clock))
    if engine.library is not None:
        problems = [*problems, *(f"Persona skipped: {p}" for p in engine.library.problems)]
    window = MainWindow(engine, safe_mode=safe_mode, problems=problems, conversations=conversations)
    if conversations is not None:
        await window.restore()
    finished = asyncio.Event()
    window.shutdown_finished.connect(finished.set)
    window.show()
    if exit_when_shown:
        QTimer.singleShot(0, lambda: _report_shown(window))
    await finished.wait()


def _store_notes(store: Store, recovery: Recovery) -> list[str]:
    notes = [store.recovered_from] if store.recovered_from else []
    migration = store.migration
    if migration is not None and migration.backup is not None:
        notes.append(f"Conversations were upgraded; the old file was kept as {migration.backup}.")
    if recovery.interrupted:
        notes.append(f"{recovery.interrupted} answer(s) were cut off when the app last stopped.")
    if recovery.not_sent:
        notes.append(f"{recovery.not_sent} message(s) were never sent; they are kept.")
    return notes


def _report_shown(window: MainWindow) -> None:
    """For measuring start-up: the moment the first frame is up, and the memory it took."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    rss = next((int(line.split()[1]) / 1024 for line in lines if "VmRSS" in line), float("nan"))
    print(f"shown at={time.perf_counter():.6f} rss_mb={rss:.1f}", flush=True)
    window.close()


def run_app(*, safe_mode: bool, exit_when_shown: bool = False) -> int:
    """Start the desktop application; returns its exit status."""
    create_application()
    loaded = load_settings()
    engine = Engine.start(settings=loaded.settings, safe_mode=safe_mode)
    qasync.run(
        run_window(
            engine,
            safe_mode=safe_mode,
            problems=loaded.problems,
            exit_when_shown=exit_when_shown,
        )
    )
    return 0
