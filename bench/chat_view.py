"""Figures for the chat transcript widget; prints numbers, asserts nothing.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/chat_view.py``
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from valis_desktop.ui.chat_view import ChatView, HistoryItem

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "models"]

CODE_ANSWER = """Here is one way, with **comments**:

```python
def top_k(items: list[dict], k: int) -> list[dict]:
    \"\"\"The k items with the highest score.\"\"\"
    return sorted(items, key=lambda item: item["score"], reverse=True)[:k]

print(top_k([{"score": 3}, {"score": 9}], 1))
```

- it copies the list
- `heapq.nlargest` is faster for small *k*
"""


def dispose(view: ChatView) -> None:
    view.close()
    view.deleteLater()
    QApplication.processEvents()
    gc.collect()


def make_view(page_size: int = 200) -> ChatView:
    view = ChatView(page_size=page_size)
    view.resize(900, 700)
    view.show()
    QApplication.processEvents()
    return view


def mixed_history(count: int) -> list[HistoryItem]:
    items = []
    for i in range(count):
        if i % 2 == 0:
            text = f"Question {i}: how do I sort a list of dicts by `key`? I tried `sorted()`."
            items.append(HistoryItem(f"m{i}", "user", text))
        elif i % 6 == 1:
            items.append(HistoryItem(f"m{i}", "assistant", CODE_ANSWER, provider="local"))
        else:
            text = (
                f"Answer {i}: use `sorted(items, key=...)`. It returns a *new* list.\n\n"
                "1. one\n2. two\n\nSee [the docs](https://docs.python.org)."
            )
            items.append(HistoryItem(f"m{i}", "assistant", text, provider="remote"))
    return items


def chunk(i: int) -> str:
    return WORDS[i % len(WORDS)] + ("\n\n" if i % 60 == 59 else " ")


def bench_append(chunks: int) -> None:
    view = make_view()
    view.begin_answer("a")
    costs = []
    for i in range(chunks):
        started = time.perf_counter()
        view.append_text("a", chunk(i))
        costs.append(time.perf_counter() - started)
    first, last = statistics.fmean(costs[:1000]), statistics.fmean(costs[-1000:])
    print(
        f"(a) append_text, {chunks:,} single-word chunks one call each: "
        f"{sum(costs) / chunks * 1e6:.0f} µs per call (first 1,000: {first * 1e6:.0f} µs, "
        f"last 1,000: {last * 1e6:.0f} µs, answer then {len(view.toPlainText()):,} chars)"
    )
    view.load_history(mixed_history(5000))
    view.begin_answer("b")
    start = time.perf_counter()
    for i in range(chunks):
        view.append_text("b", chunk(i))
    elapsed = time.perf_counter() - start
    print(f"    same, after loading a 5,000-message history: {elapsed / chunks * 1e6:.0f} µs")
    dispose(view)


def bench_stream_lag(rate: int, seconds: float) -> None:
    """Chunks arrive at ``rate``/s; a 16 ms timer appends each batch; a 5 ms timer probes lag."""
    view = make_view()
    view.load_history(mixed_history(400))
    QApplication.processEvents()
    view.begin_answer("a")
    clock = QElapsedTimer()
    gaps: list[float] = []
    tick_costs: list[float] = []
    sent = 0
    last_probe = 0.0

    def probe() -> None:
        nonlocal last_probe
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last_probe)
        last_probe = now

    def flush() -> None:
        nonlocal sent
        due = min(int(clock.nsecsElapsed() / 1e9 * rate), int(rate * seconds))
        if due > sent:
            started = time.perf_counter()
            view.append_text("a", "".join(chunk(i) for i in range(sent, due)))
            tick_costs.append((time.perf_counter() - started) * 1000)
            sent = due

    collections = 0

    def count_full_collections(phase: str, info: dict[str, int]) -> None:
        nonlocal collections
        collections += phase == "start" and info["generation"] == 2

    gc.callbacks.append(count_full_collections)
    loop = QEventLoop()
    probe_timer, batch_timer = QTimer(), QTimer()
    probe_timer.setInterval(5)
    batch_timer.setInterval(16)
    probe_timer.timeout.connect(probe)
    batch_timer.timeout.connect(flush)
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    clock.start()
    probe_timer.start()
    batch_timer.start()
    loop.exec()
    probe_timer.stop()
    batch_timer.stop()
    gc.callbacks.remove(count_full_collections)
    gaps = gaps[1:]
    text = "".join(chunk(i) for i in range(sent))
    finish = time_it(lambda: finish_answered(view, text))
    print(
        f"    streaming {rate:,} chunks/s for {seconds:.0f} s in 16 ms batches "
        f"({sent:,} chunks, {len(text):,} chars): 5 ms probe gap max {max(gaps):.1f} ms, "
        f"p99 {quantile(gaps, 0.99):.1f} ms, p50 {statistics.median(gaps):.1f} ms; "
        f"append per batch max {max(tick_costs):.2f} ms, "
        f"mean {statistics.fmean(tick_costs):.2f} ms; full GC runs {collections}"
    )
    print(f"    finish_answer of that {len(text) // 1000} KB prose answer: {finish:.0f} ms")
    dispose(view)


def bench_history(count: int) -> None:
    items = mixed_history(count)
    view = make_view()
    load = time_it(lambda: view.load_history(items))
    print(
        f"(b) load_history of {count:,} mixed messages (newest page of 200 rendered): {load:.0f} ms"
    )
    pages = []
    while view.shown_message_count() < count:
        pages.append(time_it(view.show_earlier))
    print(
        f"    each earlier page of 200: median {statistics.median(pages):.0f} ms, "
        f"last (document of {count:,}) {pages[-1]:.0f} ms"
    )
    dispose(view)
    view = make_view(page_size=count)
    load = time_it(lambda: view.load_history(items))
    print(f"    for comparison, all {count:,} rendered at once: {load:.0f} ms")
    dispose(view)


def bench_finish(size: int) -> None:
    view = make_view()
    view.load_history(mixed_history(400))
    text = ""
    while len(text) < size:
        text += CODE_ANSWER + "\n" + " ".join(WORDS * 4) + "\n\n"
    view.begin_answer("a")
    view.append_text("a", text)
    finish = time_it(lambda: finish_answered(view, text))
    print(
        f"(c) finish_answer of a {len(text) / 1000:.0f} KB answer with "
        f"{text.count('```') // 2} code blocks: {finish:.0f} ms"
    )
    dispose(view)


def finish_answered(view: ChatView, text: str) -> None:
    view.finish_answer(
        "a",
        status="answered",
        text=text,
        provider="local",
        first_chunk_seconds=0.4,
        chars_per_second=900.0,
    )


def time_it(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    QApplication.processEvents()  # includes whatever layout Qt deferred
    return (time.perf_counter() - started) * 1000


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    app = QApplication.instance() or QApplication([])
    del app
    bench_append(20_000)
    for _ in range(3):
        bench_stream_lag(5_000, 4.0)
    bench_history(5_000)
    bench_finish(20_000)


if __name__ == "__main__":
    main()
