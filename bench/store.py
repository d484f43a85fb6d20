"""Conversation store figures: filling it, opening a long conversation, searching, and the event
loop's lag while sessions stream and the recorder checkpoints.

    python3 dev.py bench store [--runs N] [--seconds S]

Builds 100,000 messages in 1,000 conversations (the largest has 5,000) in a temporary folder,
through ``Store.import_json``. Then, on a freshly opened store: the time to read the largest
conversation into records, the median time of searches, and the lag of a task that sleeps 5 ms
in a loop (how late it wakes; p50, p99, max) while 10 sessions stream through the engine (a
chunk every 20 ms each) with the recorder checkpointing, first alone, then with the UI opening
the large conversation and searching every half second. Targets: opening 5,000 messages
≤ 500 ms, a search ≤ 100 ms, lag p99 ≤ 16 ms. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

from valis_desktop.api import ChatRequest, Provider
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.session import Session
from valis_desktop.core.store import FORMAT, Recorder, Store

CONVERSATIONS = 1_000
MESSAGES = 100_000
LARGEST = 5_000
WORDS_PER_MESSAGE = 40
RARE = "mitochondria"  # in about 1 message of 200
SESSIONS = 10
CHUNK_EVERY = 0.020
TICK = 0.005


def vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ra", "te", "sun", "vel", "or", "pa", "zi", "no", "den"]
    common = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with"]
    made_up = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(3_000)}
    return common * 40 + sorted(made_up)


def export_document(rng: random.Random, words: list[str], count: int, start_ms: int) -> str:
    messages = []
    for index in range(count):
        text = " ".join(rng.choices(words, k=WORDS_PER_MESSAGE))
        if rng.random() < 0.005:
            text += f" {RARE}"
        stamp = _iso(start_ms + index * 1_000)
        messages.append(
            {
                "role": "user" if index % 2 == 0 else "assistant",
                "text": text,
                "status": "sent" if index % 2 == 0 else "answered",
                "created_at": stamp,
                "provider_id": None if index % 2 == 0 else "local",
            }
        )
    created = _iso(start_ms)
    return json.dumps(
        {
            "format": FORMAT,
            "format_version": 1,
            "conversation": {"title": "bench", "created_at": created, "updated_at": created},
            "messages": messages,
        }
    )


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


async def fill(path: Path) -> str:
    """Fill the store; returns the id of the largest conversation."""
    rng = random.Random(42)
    words = vocabulary(rng)
    rest = MESSAGES - LARGEST
    sizes = [LARGEST] + [
        rest // (CONVERSATIONS - 1) + (1 if i < rest % (CONVERSATIONS - 1) else 0)
        for i in range(CONVERSATIONS - 1)
    ]
    store = await Store.open(path)
    started = time.perf_counter()
    ids = []
    for number, size in enumerate(sizes):
        document = export_document(rng, words, size, 1_700_000_000_000 + number * 10_000_000)
        ids.append(await store.import_json(document))
    elapsed = time.perf_counter() - started
    await store.aclose()
    print(f"fill: {sum(sizes):,} messages in {len(sizes):,} conversations through import_json")
    print(f"  {elapsed:.1f} s ({sum(sizes) / elapsed:,.0f} messages/s), file {_mb(path):.0f} MB")
    return ids[0]


async def median_ms(runs: int, action: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(first run, median of the runs) in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times)


class Streaming(Provider):
    id = "streaming"
    display_name = "Streaming"
    default_concurrency = SESSIONS

    def __init__(self, seconds: float) -> None:
        self.chunks = int(seconds / CHUNK_EVERY)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        for number in range(self.chunks):
            await asyncio.sleep(CHUNK_EVERY)
            yield f"word{number} "


async def lag_while_streaming(
    store: Store, seconds: float, ui_load: Callable[[], Awaitable[object]] | None
) -> list[float]:
    """Lateness of a 5 ms sleep, in ms, while 10 sessions stream (and the UI works)."""
    manager = ProviderManager()
    manager.add_provider(Streaming(seconds), plugin="bench")
    recorder = Recorder(store)
    sessions = [Session(manager, chain=["streaming"]) for _ in range(SESSIONS)]
    for position, session in enumerate(sessions):
        recorder.follow(session, tab_position=position)
    requests = [await recorder.submit(session, "stream please") for session in sessions]
    everything = asyncio.gather(*requests)
    lags: list[float] = []

    async def watch() -> None:
        while not everything.done():
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append((time.perf_counter() - started - TICK) * 1000)

    async def work() -> None:
        while ui_load is not None and not everything.done():
            await ui_load()
            await asyncio.sleep(0.5)

    await asyncio.gather(watch(), work(), everything)
    await recorder.aclose()
    for session in sessions:
        await session.aclose()
    await manager.aclose()
    return lags


def describe(lags: list[float]) -> str:
    ordered = sorted(lags)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms ({len(lags)} ticks)"


async def main(runs: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.sqlite3"
        largest = await fill(path)

        started = time.perf_counter()
        store = await Store.open(path)
        print(f"open (quick check, schema check): {(time.perf_counter() - started) * 1000:.0f} ms")
        try:
            first, median = await median_ms(runs, lambda: store.messages(largest))
            count = len(await store.messages(largest))
            print(f"open the largest conversation ({count:,} messages) to records:")
            print(f"  first {first:.0f} ms, median {median:.0f} ms  (target ≤ 500 ms)")
            for words in (RARE, "the", "kalo", "mitochondria the"):
                hits = len(await store.search(words))
                first, median = await median_ms(runs, partial(store.search, words))
                print(
                    f"search {words!r}: median {median:.1f} ms, first {first:.1f} ms,"
                    f" {hits} hits shown  (target ≤ 100 ms)"
                )
            lags = await lag_while_streaming(store, seconds, None)
            print(f"event-loop lag, {SESSIONS} sessions streaming + checkpoints: {describe(lags)}")

            async def ui() -> None:
                await store.messages(largest)
                await store.search("the")

            lags = await lag_while_streaming(store, seconds, ui)
            print(f"  … and the UI opening 5,000 messages and searching: {describe(lags)}")
            print("  (target p99 ≤ 16 ms)")
        finally:
            await store.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per timing (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="streaming time per lag run")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.seconds))
