"""GUI responsiveness, start-up time and memory of the real window.

    python3 dev.py bench gui          (QT_QPA_PLATFORM=offscreen unless a display is set)

Event-loop lag is what a 5 ms QTimer sees beyond its interval while answers stream through the
real engine, bridge and chat views: (a) 10 tabs at 100 chunks/s each, (b) one tab at 5,000
chunks/s. Then: opening a 5,000-message conversation of mixed Markdown, the time from process
start to a shown window (a fresh process), and resident memory idle and with 20 busy tabs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync  # type: ignore[import-untyped]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from valis_desktop.api import ChatRequest, Provider
from valis_desktop.app import create_application
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.builtin.personas import ASSISTANT
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.settings import EngineSettings, Settings
from valis_desktop.ui.chat_tab import ChatTab
from valis_desktop.ui.main_window import MainWindow
from valis_desktop.ui.message_html import HistoryItem

CHUNK = "word "
PARAGRAPH = 100
"""Every 100th chunk ends a paragraph (~500 characters), as model output does."""


class Steady(Provider):
    """Streams ``rate`` chunks a second for ``seconds`` (real time)."""

    display_name = "Steady"
    default_concurrency = 32

    def __init__(self, provider_id: str, rate: float, seconds: float) -> None:
        self.id = provider_id
        self.rate = rate
        self.total = int(rate * seconds)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while sent < self.total:
            await asyncio.sleep(max(0.001, 1.0 / self.rate))
            due = min(self.total, int((loop.time() - start) * self.rate) + 1)
            while sent < due:
                sent += 1
                yield CHUNK if sent % PARAGRAPH else "word\n\n"


class LagProbe:
    """Records how late a 5 ms repeating timer fires."""

    def __init__(self, interval_ms: int = 5) -> None:
        self.interval = interval_ms / 1000
        self.lags: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(0.0, now - self._last - self.interval))
        self._last = now

    def stop(self) -> str:
        self._timer.stop()
        ordered = sorted(self.lags)
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        return f"lag p50 {p50:5.1f} ms   p99 {p99:5.1f} ms   max {ordered[-1] * 1000:5.1f} ms"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_window(*providers: Provider) -> MainWindow:
    manager = ProviderManager(EngineConfig(global_limit=32))
    for provider in (*providers, FallbackProvider()):
        manager.add_provider(provider, plugin="bench")
    settings = Settings(engine=EngineSettings(default_chain=[providers[0].id]))
    engine = Engine(PluginHost(safe_mode=True), manager, {ASSISTANT.id: ASSISTANT}, settings)
    window = MainWindow(engine)
    window.resize(1280, 800)
    window.show()
    return window


async def settle(tabs: list[ChatTab]) -> None:
    while not all(tab.settled for tab in tabs):  # noqa: ASYNC110 - UI state has no event
        await asyncio.sleep(0.05)


async def close(window: MainWindow) -> None:
    done = asyncio.Event()
    window.shutdown_finished.connect(done.set)
    window.close()
    await done.wait()


async def streaming_lag(tabs: int, rate: float, seconds: float) -> str:
    window = make_window(Steady("steady", rate, seconds))
    chats = [window.current_tab() or window.new_tab()]
    chats += [window.new_tab() for _ in range(tabs - 1)]
    probe = LagProbe()
    for chat in chats:
        chat.send("stream, please")
    await settle(chats)
    result = probe.stop()
    received = sum(len(r.text) for chat in chats for r in map(_last_reply, [chat]))
    await close(window)
    total = int(rate * seconds)
    expected = tabs * (total * len(CHUNK) + total // PARAGRAPH)
    return f"{result}   ({received:,} of {expected:,} characters shown)"


def _last_reply(tab: ChatTab) -> object:
    return list(tab._requests.values())[-1].result()


def history(count: int) -> list[HistoryItem]:
    samples = [
        "How do I **reverse** a list in Python?",
        "Use slicing or `reversed()`:\n\n```python\nitems = [1, 2, 3]\nprint(items[::-1])\n```\n",
        "And for a *string*?",
        "The same slice works:\n\n- `'abc'[::-1]` gives `'cba'`\n- `''.join(reversed(s))` too\n",
        "Thanks! A table of the options?",
        "| way | copies |\n|---|---|\n| `[::-1]` | yes |\n| `reverse()` | no |\n",
    ]
    return [
        HistoryItem(
            f"m{i}",
            "user" if i % 2 == 0 else "assistant",
            samples[i % len(samples)],
            provider=None if i % 2 == 0 else "Demo model",
        )
        for i in range(count)
    ]


async def open_conversation(count: int) -> str:
    window = make_window(Steady("steady", 1, 1))
    tab = window.current_tab()
    assert tab is not None
    items = history(count)
    await asyncio.sleep(0.1)
    start = time.perf_counter()
    tab.view.load_history(items)
    QApplication.processEvents()
    elapsed = time.perf_counter() - start
    shown = tab.view.shown_message_count()
    await close(window)
    return f"{elapsed * 1000:6.0f} ms  ({shown} newest shown; earlier pages load on scroll)"


async def busy_tabs_memory(tabs: int, messages: int) -> str:
    provider = Steady("steady", 2000, 0.15)  # 300 chunks, ~1,500 characters an answer
    window = make_window(provider)
    chats = [window.current_tab() or window.new_tab()]
    chats += [window.new_tab() for _ in range(tabs - 1)]
    for chat in chats:
        chat.session.max_queue = messages
        for i in range(messages // 2):
            chat.send(f"question {i}")
    await settle(chats)
    rss = rss_mb()
    await close(window)
    return f"{rss:6.0f} MB  ({tabs} tabs × {messages} messages)"


def start_up(runs: int, *, safe_mode: bool) -> str:
    """Start to a shown window: the application alone (safe mode), or with every plugin
    installed here loading (``local``, the cloud providers, the llm bridge importing llm …)."""
    times, memory = [], []
    environment = {**os.environ, "VALIS_SAFE_MODE": "1" if safe_mode else "0"}
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "valis_desktop", "--exit-when-shown"],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
        )
        shown = [line for line in child.stdout.splitlines() if line.startswith("shown")]
        if not shown:
            raise SystemExit(f"the window did not report being shown:\n{child.stderr}")
        fields = dict(part.split("=") for part in shown[0].split()[1:])
        times.append(float(fields["at"]) - start)
        memory.append(float(fields["rss_mb"]))
    what = "built-ins only" if safe_mode else "every installed plugin"
    return (
        f"start to shown window {statistics.median(times) * 1000:6.0f} ms   "
        f"idle RSS {statistics.median(memory):5.0f} MB  ({what}; median of {runs})"
    )


async def main(seconds: float) -> None:
    print("(a) 10 tabs × 100 chunks/s:", await streaming_lag(10, 100, seconds))
    print("(b) 1 tab × 5,000 chunks/s: ", await streaming_lag(1, 5000, seconds / 2))
    print("open 5,000 messages:        ", await open_conversation(5000))
    print("20 busy tabs:               ", await busy_tabs_memory(20, 200))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(start_up(args.runs, safe_mode=True))
    print(start_up(args.runs, safe_mode=False))
    create_application()
    qasync.run(main(args.seconds))
