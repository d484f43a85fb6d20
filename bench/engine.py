"""Engine throughput and overhead against providers of fixed latency.

    python3 dev.py bench engine [--runs N]

For a provider that answers one 40-character chunk after L = 50 ms, all requests submitted at
once and a global limit of 10, the ideal makespan is max(longest session's requests × L,
total requests × L / 10): sessions are serial, and at most 10 provider calls run at once.
The zero-latency scenario measures the engine's own cost per request.
Each figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from valis_desktop.api import ChatRequest, Provider
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.request import Request, Status
from valis_desktop.core.session import Session

LATENCY = 0.050
GLOBAL_LIMIT = 10
ANSWER = "x" * 40


class FixedLatency(Provider):
    id = "fixed"
    display_name = "Fixed latency"
    default_concurrency = 100_000  # only the global limit binds

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        if self.latency:
            await asyncio.sleep(self.latency)
        yield ANSWER


@dataclass
class Run:
    wall: float
    latencies: list[float]


async def run_once(sessions: int, per_session: int, latency: float) -> Run:
    manager = ProviderManager(EngineConfig(global_limit=GLOBAL_LIMIT))
    manager.add_provider(FixedLatency(latency), plugin="bench")
    chats = [Session(manager, chain=["fixed"], max_queue=per_session) for _ in range(sessions)]
    start = time.perf_counter()
    requests: list[Request] = [
        chat.submit(f"question {i}") for chat in chats for i in range(per_session)
    ]
    replies = await asyncio.gather(*(request.reply() for request in requests))
    wall = time.perf_counter() - start
    assert all(reply.status is Status.ANSWERED for reply in replies)
    latencies = [r.finished_at - r.submitted_at for r in requests if r.finished_at is not None]
    for chat in chats:
        await chat.aclose()
    return Run(wall, latencies)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def median_run(sessions: int, per_session: int, latency: float, runs: int) -> list[Run]:
    return [asyncio.run(run_once(sessions, per_session, latency)) for _ in range(runs)]


def latency_scenarios(runs: int) -> None:
    print(
        f"Fixed latency L = {LATENCY * 1000:.0f} ms, global limit {GLOBAL_LIMIT}, median of {runs}"
    )
    header = (
        f"{'scenario':<26}{'wall s':>9}{'ideal s':>9}{'ideal/wall':>12}{'mean s':>9}{'p99 s':>9}"
    )
    print(header)
    print("-" * len(header))
    for sessions, per_session in ((1, 10), (3, 5), (100, 5), (1000, 3)):
        results = median_run(sessions, per_session, LATENCY, runs)
        wall = statistics.median(r.wall for r in results)
        total = sessions * per_session
        ideal = max(per_session * LATENCY, total * LATENCY / GLOBAL_LIMIT)
        mean = statistics.median(statistics.fmean(r.latencies) for r in results)
        tail = statistics.median(p99(r.latencies) for r in results)
        name = f"{sessions} × {per_session} requests"
        print(f"{name:<26}{wall:>9.3f}{ideal:>9.3f}{ideal / wall:>12.3f}{mean:>9.3f}{tail:>9.3f}")


def overhead_scenario(runs: int) -> None:
    sessions, per_session = 100, 200
    total = sessions * per_session
    results = median_run(sessions, per_session, 0.0, runs)
    wall = statistics.median(r.wall for r in results)
    median_latency = statistics.median(statistics.median(r.latencies) for r in results)
    tail = statistics.median(p99(r.latencies) for r in results)
    print()
    print(f"Zero latency, {total:,} requests across {sessions} sessions, median of {runs}")
    print(f"  per request:            {wall / total * 1e6:8.1f} µs  (wall {wall:.3f} s)")
    print(f"  submit → reply median:  {median_latency * 1000:8.1f} ms")
    print(f"  submit → reply p99:     {tail * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    latency_scenarios(args.runs)
    overhead_scenario(args.runs)


if __name__ == "__main__":
    main()
