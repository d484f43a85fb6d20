"""Context assembly: each session's own history, trimmed to the provider's budget."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from valis_desktop.api import ChatRequest, Message, Persona, Role, TransientError
from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.context import (
    DEFAULT_CONTEXT_TOKENS,
    History,
    build_messages,
    estimate_tokens,
    left_out_note,
    prompt_budget,
)
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session
from valis_desktop.testing import Script, ScriptedProvider

MakeManager = Callable[..., ProviderManager]

PERSONA = Persona(id="tutor", name="Tutor", system_prompt="You are a patient tutor.")


def user(text: str) -> Message:
    return Message(role=Role.USER, content=text)


def assistant(text: str) -> Message:
    return Message(role=Role.ASSISTANT, content=text)


def conversation(turns: int, size: int = 400) -> list[Message]:
    """``turns`` question-and-answer pairs, each message ``size`` characters long."""
    history = []
    for n in range(turns):
        history += [user(f"q{n}".ljust(size, ".")), assistant(f"a{n}".ljust(size, "."))]
    return history


def test_a_long_history_is_trimmed_from_the_oldest_turn() -> None:
    history = conversation(20)  # 40 messages of about 104 tokens each
    new = user("and now?")
    turn = 2 * estimate_tokens(history[0])
    fixed = sum(map(estimate_tokens, (Message(role=Role.SYSTEM, content="x" * 24), new)))
    budget = fixed + estimate_tokens(left_out_note(40)) + 5 * turn + turn // 2

    messages = build_messages(PERSONA, history, new, budget)

    assert messages[0] == Message(role=Role.SYSTEM, content="You are a patient tutor.")
    assert messages[1] == Message(
        role=Role.SYSTEM,
        content="(30 earlier messages of this conversation were left out to fit the model's "
        "context.)",
    )
    assert list(messages[2:-1]) == history[30:]  # the five newest turns, whole
    assert messages[-1] == new
    assert sum(map(estimate_tokens, messages)) <= budget


def test_turns_are_dropped_whole_even_when_they_are_uneven() -> None:
    history = [user("short"), assistant("x" * 4000), user("q"), assistant("a")]
    messages = build_messages(None, history, user("next"), budget_tokens=200)

    assert [m.content for m in messages] == [left_out_note(2).content, "q", "a", "next"]


def test_the_newest_turn_is_sent_whole_even_alone_over_budget() -> None:
    huge = user("x" * 40_000)
    messages = build_messages(PERSONA, conversation(3), huge, budget_tokens=1_000)

    assert [m.role for m in messages] == [Role.SYSTEM, Role.SYSTEM, Role.USER]
    assert messages[1] == left_out_note(6)
    assert messages[2] is huge


def test_nothing_is_left_out_when_the_history_fits() -> None:
    history = conversation(3, size=10)
    assert build_messages(PERSONA, history, user("q"), 10_000) == (
        Message(role=Role.SYSTEM, content=PERSONA.system_prompt),
        *history,
        user("q"),
    )
    assert build_messages(None, history, user("q")) == (*history, user("q"))


def test_the_budget_leaves_room_for_the_answer() -> None:
    declared = ScriptedProvider(id="big")
    declared.context_tokens = 32_000
    assert prompt_budget(declared) == 32_000 - 1_024
    assert prompt_budget(declared, max_tokens=4_000) == 28_000
    unknown = ScriptedProvider(id="unknown")
    assert prompt_budget(unknown) == DEFAULT_CONTEXT_TOKENS - 1_024
    tiny = ScriptedProvider(id="tiny")
    tiny.context_tokens = 2_000
    assert prompt_budget(tiny) == 1_500  # at most a quarter is kept for the answer


async def test_each_attempt_is_fitted_to_the_provider_it_goes_to(
    make_manager: MakeManager,
) -> None:
    small = ScriptedProvider(id="small")
    small.context_tokens = 1_000
    small.push(Script(error=TransientError("HTTP 503")))
    large = ScriptedProvider(id="large")
    large.context_tokens = 100_000
    session = Session(
        make_manager(small, large),
        chain=["small", "large"],
        persona=PERSONA,
        history=conversation(10),
    )

    reply = await session.submit("next")

    assert reply.status is Status.ANSWERED and reply.provider_id == "large"
    [to_small], [to_large] = small.calls, large.calls
    assert to_small.messages[1].content.startswith("(")  # trimmed for the small one
    assert sum(map(estimate_tokens, to_small.messages)) <= prompt_budget(small)
    assert list(to_large.messages[1:-1]) == conversation(10)  # all of it for the large one


async def test_a_trimmed_session_keeps_its_newest_turns(make_manager: MakeManager) -> None:
    provider = ScriptedProvider(id="p", default=lambda r: Script(chunks=("a" * 396,)))
    provider.context_tokens = 1_200
    session = Session(make_manager(provider), chain=["p"], persona=PERSONA)

    for n in range(11):
        await session.submit(f"q{n}".ljust(400, "."))
    last_request = session.submit("q11".ljust(400, "."))
    await last_request

    last = provider.calls[-1].messages
    assert last[0].content == PERSONA.system_prompt
    assert last[1].role is Role.SYSTEM and "earlier messages" in last[1].content
    assert last[-1].content.startswith("q11")
    kept = len(last) - 3
    assert kept >= 2 and kept % 2 == 0  # whole turns only
    assert last_request.left_out == 22 - kept  # the request knows, for the chat to say so
    assert last[1] == left_out_note(22 - kept)
    before_q11 = session.history[:-2]
    assert list(last[2:-1]) == before_q11[-kept:]  # the newest turns, in order
    assert sum(map(estimate_tokens, last)) <= prompt_budget(provider)
    assert len(session.history) == 24  # the session forgets nothing; only the request is fitted


async def test_two_sessions_under_load_see_only_their_own_history(
    make_manager: MakeManager,
) -> None:
    """Two tabs with the same persona, 50 interleaved requests over three providers, some of
    which fail before answering (the chain moves on): every call a provider received holds its
    own session's history, in order, and nothing else."""
    rng = random.Random(8)

    def script(request: ChatRequest) -> Script:
        if rng.random() < 0.2:
            return Script(error=TransientError("HTTP 503"))
        return Script(chunks=("re: ", request.prompt), cooperative=True)

    providers = [ScriptedProvider(id=f"p{n}", default=script) for n in range(3)]
    for provider in providers:
        provider.context_tokens = 100_000
    # Breakers stay closed: the manual clock never reopens them, and this is about contexts.
    never_open = BreakerConfig(failure_threshold=1_000, jitter=0.0)
    manager = make_manager(*providers, global_limit=2, breaker=never_open)
    sessions = {
        name: Session(manager, chain=["p0", "p1", "p2"], persona=PERSONA) for name in ("A", "B")
    }

    requests = []
    for n in range(25):
        for name, session in sessions.items():
            first = n % 3
            chain = [f"p{(first + k) % 3}" for k in range(3)]
            requests.append(session.submit(f"{name}{n}", chain=chain))
        await asyncio.sleep(0)  # let the workers run between submissions
    replies = await asyncio.gather(*requests)

    calls = [call for provider in providers for call in provider.calls]
    assert len(replies) == 50 and len(calls) >= 50
    answered = {reply.prompt for reply in replies if reply.status is Status.ANSWERED}
    assert len(answered) > 30  # most got an answer; the rest failed on all three providers
    for call in calls:
        session = sessions[call.prompt[0]]
        assert call.session_id == session.id
        number = int(call.prompt[1:])
        expected: list[Message] = []
        for n in range(number):
            prompt = f"{call.prompt[0]}{n}"
            if prompt in answered:
                expected += [user(prompt), assistant(f"re: {prompt}")]
        assert call.messages == (
            Message(role=Role.SYSTEM, content=PERSONA.system_prompt),
            *expected,
            user(call.prompt),
        )


def fitted_by_walking(
    persona: Persona | None, history: list[Message], new: Message, budget: int
) -> tuple[Message, ...]:
    """The trimming rule written the plain way: turns from the newest back while they fit,
    then more dropped until the note fits too."""
    head = [Message(role=Role.SYSTEM, content=persona.system_prompt)] if persona else []
    turns: list[list[Message]] = []
    for message in history:
        if message.role is Role.USER or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    room = budget - sum(map(estimate_tokens, [*head, new]))
    kept, used = len(turns), 0
    while kept and used + sum(map(estimate_tokens, turns[kept - 1])) <= room:
        kept -= 1
        used += sum(map(estimate_tokens, turns[kept]))
    if kept == 0:
        return (*head, *history, new)
    note = left_out_note(len(history))
    while kept < len(turns) and used + estimate_tokens(note) > room:
        used -= sum(map(estimate_tokens, turns[kept]))
        kept += 1
    recent = [message for turn in turns[kept:] for message in turn]
    return (*head, left_out_note(len(history) - len(recent)), *recent, new)


def test_the_measured_history_trims_exactly_as_walking_every_turn_would() -> None:
    rng = random.Random(7)
    for _ in range(300):
        history: list[Message] = []
        if rng.random() < 0.2:
            history.append(assistant("a greeting"))  # a chat that opens with the assistant
        for _turn in range(rng.randint(0, 12)):
            history.append(user("q" * rng.randint(0, 300)))
            for _answer in range(rng.choice((0, 1, 1, 2))):  # none (stopped), one or two
                history.append(assistant("a" * rng.randint(0, 600)))
        measured = History()
        for message in history:
            measured.append(message)
        assert measured == history and list(measured) == history
        new = user("n" * rng.randint(0, 200))
        persona = rng.choice((None, PERSONA))
        total = sum(map(estimate_tokens, history))
        # Budgets anywhere, and exactly at the edges: where the newest turns (the note
        # perhaps included) fill the room to the last token.
        fixed = sum(
            map(
                estimate_tokens,
                [new]
                + ([Message(role=Role.SYSTEM, content=PERSONA.system_prompt)] if persona else []),
            )
        )
        starts = [i for i, m in enumerate(history) if m.role is Role.USER or i == 0]
        start = rng.choice(starts) if starts else 0
        edge = fixed + sum(map(estimate_tokens, history[start:]))
        budget = rng.choice(
            (rng.randint(0, total + 200), edge, edge + estimate_tokens(left_out_note(len(history))))
        ) + rng.choice((0, 0, -1, 1))

        expected = fitted_by_walking(persona, history, new, budget)
        assert build_messages(persona, measured, new, budget) == expected
        assert build_messages(persona, history, new, budget) == expected
