"""Tokens per second of the local model through the app, over the same model called directly.

    python3 dev.py bench local_model [--runs N] [--tokens N]

"Through the app": the ``local`` provider in a ``ProviderManager``, asked by a ``Session``, the
way a chat tab asks it. "Directly": xllamacpp's ``handle_chat_completions`` on a server with the
same settings, streaming to a Python callback. Both load the bundled SmolLM2 once and answer the
same prompt at temperature 0 (so the same text), the two alternating run by run; each figure is
the median of the runs. Streaming rate = tokens after the first / time after the first; overall
rate = tokens / time from the request to the end of the answer.

Then a long chat: 16 turns in one session, each question about 30 tokens and each answer at most
40, so that from the eighth turn on the conversation no longer fits the prompt budget and older
turns are left out. It prints the time to the first word per turn and the median over the
trimmed turns (the ideal: what the short turns before trimming take).

Last, the first answer of a fresh start, from Enter to the first word: with the model loading
only then, and with it warmed up while the user typed (one second, as ``warm_up`` is called at
the first keystroke).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import xllamacpp  # type: ignore[import-untyped]
from valis_local import LocalProvider
from valis_local.model_file import BUNDLED_DISTRIBUTION, BUNDLED_FILE
from valis_local.provider import SETTINGS, TOP_P

from valis_desktop.api import GenerationParams
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session

PROMPT = "Write a short story about a robot who learns to paint."


@dataclass(frozen=True, slots=True)
class Run:
    tokens: int
    first_token: float
    """Seconds from the request to the first token."""
    total: float
    """Seconds from the request to the end of the answer."""

    @property
    def streaming_rate(self) -> float:
        return (self.tokens - 1) / (self.total - self.first_token)

    @property
    def overall_rate(self) -> float:
        return self.tokens / self.total


async def through_the_app(manager: ProviderManager, tokens: int) -> Run:
    session = Session(
        manager, chain=["local"], params=GenerationParams(temperature=0.0, max_tokens=tokens)
    )
    try:
        request = session.submit(PROMPT)
        reply = await request
    finally:
        await session.aclose()
    if reply.status is not Status.ANSWERED or reply.usage is None:
        raise SystemExit(f"the app did not answer: {reply.status} {reply.error}")
    assert request.started_at is not None and request.first_chunk_at is not None
    assert reply.usage.completion_tokens is not None and reply.duration_seconds is not None
    return Run(
        tokens=reply.usage.completion_tokens,
        first_token=request.first_chunk_at - request.started_at,
        total=reply.duration_seconds,
    )


def direct_server() -> Any:
    path = importlib.metadata.distribution(BUNDLED_DISTRIBUTION).locate_file(BUNDLED_FILE)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = SETTINGS.context_tokens
    params.n_batch = params.n_ubatch = SETTINGS.batch_tokens
    params.cpuparams.n_threads = SETTINGS.threads
    params.cpuparams_batch.n_threads = SETTINGS.batch_threads
    params.n_parallel = 1
    params.api_keys = ["bench"]
    params.verbosity = 0
    return xllamacpp.Server(params)


def directly(server: Any, tokens: int) -> Run:
    arrivals: list[float] = []
    counted: list[int] = []

    def on_chunk(chunk: dict[str, Any]) -> bool:
        choices = chunk.get("choices") or ()
        if choices and choices[0].get("delta", {}).get("content"):
            arrivals.append(time.monotonic())
        if chunk.get("usage"):
            counted.append(chunk["usage"]["completion_tokens"])
        return False

    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "top_p": TOP_P,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.monotonic()
    # on a worker thread, like the app, so that both pay for the hand-over between threads
    worker = threading.Thread(target=server.handle_chat_completions, args=(body, on_chunk))
    worker.start()
    worker.join()
    ended = time.monotonic()
    return Run(tokens=counted[-1], first_token=arrivals[0] - started, total=ended - started)


def median_run(runs: list[Run]) -> tuple[float, float, float]:
    return (
        statistics.median(r.streaming_rate for r in runs),
        statistics.median(r.overall_rate for r in runs),
        statistics.median(r.first_token for r in runs),
    )


async def bench(runs: int, tokens: int) -> None:
    provider = LocalProvider()
    manager = ProviderManager()
    manager.add_provider(provider, plugin="valis-local")
    await provider.load()
    server = direct_server()
    try:
        await through_the_app(manager, tokens)  # warm-up: caches, first allocations
        directly(server, tokens)
        app_runs: list[Run] = []
        direct_runs: list[Run] = []
        for _ in range(runs):
            app_runs.append(await through_the_app(manager, tokens))
            direct_runs.append(directly(server, tokens))
    finally:
        await provider.aclose()
        del server

    print(f"Local model (SmolLM2-135M Q4_1), {tokens} tokens max, median of {runs} runs")
    print(f"threads: {SETTINGS.threads} generating, {SETTINGS.batch_threads} reading the prompt")
    print()
    header = f"{'':<12}{'tokens':>8}{'streaming tok/s':>17}{'overall tok/s':>15}{'first token':>13}"
    print(header)
    print("-" * len(header))
    for name, measured in (("directly", direct_runs), ("app", app_runs)):
        streaming, overall, first = median_run(measured)
        count = statistics.median(r.tokens for r in measured)
        print(f"{name:<12}{count:>8.0f}{streaming:>17.1f}{overall:>15.1f}{first * 1000:>10.1f} ms")
    app_streaming, app_overall, _ = median_run(app_runs)
    direct_streaming, direct_overall, _ = median_run(direct_runs)
    print()
    print(f"app / directly, streaming rate: {app_streaming / direct_streaming:.3f}")
    print(f"app / directly, overall rate:   {app_overall / direct_overall:.3f}")
    await long_chat()
    await first_answers()


async def long_chat(turns: int = 16) -> None:
    provider = LocalProvider()
    manager = ProviderManager()
    manager.add_provider(provider, plugin="valis-local")
    await provider.load()
    session = Session(
        manager, chain=["local"], params=GenerationParams(temperature=0.0, max_tokens=40)
    )
    firsts: list[tuple[float, int]] = []
    try:
        for n in range(turns):
            reply = await session.submit(
                f"Question {n}: tell me one short fact about the number {n} and about the "
                "colour of the sea at dawn, in a sentence."
            )
            assert reply.status is Status.ANSWERED and reply.first_chunk_seconds is not None
            prompt = reply.usage.prompt_tokens if reply.usage else None
            firsts.append((reply.first_chunk_seconds, prompt or 0))
    finally:
        await session.aclose()
        await provider.aclose()
    print()
    print(f"Long chat, {turns} turns: first word (prompt tokens) per turn")
    print("  " + "  ".join(f"{first:.2f} s ({prompt})" for first, prompt in firsts))
    # The first turn whose prompt is shorter than the one before: older turns were left out.
    cut = next(n for n in range(1, turns) if firsts[n][1] < firsts[n - 1][1])
    short = [first for first, _ in firsts[1:cut]]
    trimmed = [first for first, _ in firsts[cut:]]
    print(
        f"  first word before trimming: median {statistics.median(short):.2f} s; once trimmed: "
        f"median {statistics.median(trimmed):.2f} s, mean {statistics.fmean(trimmed):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    arguments = parser.parse_args()
    asyncio.run(bench(arguments.runs, arguments.tokens))


async def first_answer(*, warm: bool, typing: float = 1.0) -> float:
    provider = LocalProvider()
    manager = ProviderManager()
    manager.add_provider(provider, plugin="valis-local")
    session = Session(
        manager, chain=["local"], params=GenerationParams(temperature=0.0, max_tokens=24)
    )
    try:
        if warm:
            provider.warm_up()
        await asyncio.sleep(typing)  # the user typing the message
        reply = await session.submit("What is the capital of France?")
    finally:
        await session.aclose()
        await manager.aclose()
    assert reply.status is Status.ANSWERED and reply.first_chunk_seconds is not None
    return reply.first_chunk_seconds


async def first_answers(runs: int = 3) -> None:
    cold = statistics.median([await first_answer(warm=False) for _ in range(runs)])
    warm = statistics.median([await first_answer(warm=True) for _ in range(runs)])
    print()
    print(f"First answer of a fresh start, Enter to first word (median of {runs}):")
    print(f"  model loaded at the first message {cold:.2f} s; warmed up while typing {warm:.2f} s")


if __name__ == "__main__":
    main()
