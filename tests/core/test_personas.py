"""The persona library: built-ins, user files, plugin packs, and what a session does with them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from valis_desktop.api import ENTRY_POINT_GROUP, GenerationParams, Persona, Role
from valis_desktop.builtin.personas import ASSISTANT
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaError, PersonaLibrary, PersonaOrigin
from valis_desktop.core.plugins import PluginHost, PluginState
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.session import Session
from valis_desktop.testing import Script, ScriptedProvider

MakeManager = Callable[..., ProviderManager]

BUILTINS = [
    "assistant",
    "business-strategist",
    "creative-visionary",
    "hr-advisor",
    "leadership-coach",
    "life-coach",
]


def pack_host(*, load: bool = True) -> PluginHost:
    value = "tests.core.sample_plugins.persona_pack"
    host = PluginHost(
        entry_points=[EntryPoint(name="persona_pack", value=value, group=ENTRY_POINT_GROUP)]
    )
    if load:
        host.load()
    return host


def test_the_builtins_load_with_the_assistant_first(tmp_path: Path) -> None:
    library = PersonaLibrary(tmp_path)
    library.load()

    assert library.problems == []
    assert sorted(library.personas) == BUILTINS
    assert next(iter(library.personas)) == "assistant"
    assert library.personas["assistant"] == ASSISTANT  # one definition, two readers
    for persona in library.personas.values():
        assert library.origin(persona.id) is PersonaOrigin.BUILTIN
        assert persona.description and persona.greeting and persona.system_prompt
        if persona.id != "assistant":
            assert "professional" in persona.system_prompt  # each says when to refer


def test_a_persona_pack_registers_under_its_namespace_and_a_collision_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = PersonaLibrary(tmp_path)
    library.load(pack_host())

    assert [p for p in library.personas if ":" in p] == ["persona_pack:bard", "persona_pack:sage"]
    assert library.personas["persona_pack:sage"].system_prompt == "Speak in proverbs."
    assert library.personas["persona_pack:bard"].name == "Bard"  # the first one stays
    assert library.origin("persona_pack:sage") is PersonaOrigin.PLUGIN
    assert library.plugin("persona_pack:sage") == "persona_pack"
    assert [str(p) for p in library.problems] == [
        "plugin 'persona_pack': persona 'persona_pack:bard' was refused: the plugin already "
        "registered a persona with this id. Each persona of a pack needs its own id."
    ]
    assert [r.getMessage() for r in caplog.records] == [f"personas: {library.problems[0]}"]
    caplog.clear()
    # The built-in plugin's Assistant is the built-in file's, not a namespaced copy.
    assert "personas:assistant" not in library.personas
    assert sorted(p for p in library.personas if ":" not in p) == BUILTINS


def test_plugin_personas_cannot_be_edited_but_can_be_duplicated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = PersonaLibrary(tmp_path)
    library.load(pack_host())
    caplog.clear()

    with pytest.raises(PersonaError, match="kept for personas of plugins"):
        library.save(library.personas["persona_pack:sage"])
    with pytest.raises(PersonaError, match="plugin persona and cannot be deleted"):
        library.delete("persona_pack:sage")
    copy = library.duplicate("persona_pack:sage")
    assert copy.id == "persona_pack-sage-copy" and copy.name == "Sage (copy)"
    library.save(copy)
    assert library.origin(copy.id) is PersonaOrigin.USER


def test_broken_files_are_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.toml").write_text('id = "good"\nname = "Good"\n', encoding="utf-8")
    (tmp_path / "bad-toml.toml").write_text('id = "x\nname = ', encoding="utf-8")
    (tmp_path / "no-name.toml").write_text('id = "no-name"\n', encoding="utf-8")
    (tmp_path / "colour.toml").write_text(
        'id = "colour"\nname = "C"\ncolour = "red"\n', encoding="utf-8"
    )
    (tmp_path / "typo.toml").write_text(
        'id = "typo"\nname = "T"\nsytem_prompt = "x"\n', encoding="utf-8"
    )
    (tmp_path / "mine.toml").write_text('id = "assistant"\nname = "Mine"\n', encoding="utf-8")
    (tmp_path / "ns.toml").write_text('id = "a:b"\nname = "NS"\n', encoding="utf-8")
    (tmp_path / "twin.toml").write_text('id = "good"\nname = "Twin"\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a persona", encoding="utf-8")

    library = PersonaLibrary(tmp_path)
    library.load()

    assert library.personas["good"] == Persona(id="good", name="Good")
    assert library.personas["assistant"] == ASSISTANT
    assert set(library.personas) == {*BUILTINS, "good"}
    problems = {Path(p.source).name: p.message for p in library.problems}
    assert set(problems) == {
        "bad-toml.toml", "colour.toml", "mine.toml", "no-name.toml", "ns.toml", "twin.toml",
        "typo.toml",
    }  # fmt: skip
    assert problems["bad-toml.toml"].startswith("not valid TOML: ")
    assert problems["no-name.toml"] == "name: Field required. The file was skipped."
    assert problems["colour.toml"].startswith("colour: String should match pattern")
    assert problems["typo.toml"] == "unknown field 'sytem_prompt' (a typo?). The file was skipped."
    assert "belongs to a built-in persona" in problems["mine.toml"]
    assert "contains ':'" in problems["ns.toml"]
    assert "already has the id 'good'" in problems["twin.toml"]
    assert len(caplog.records) == 7
    caplog.clear()


def test_save_then_load_round_trips_a_persona_identically(tmp_path: Path) -> None:
    persona = Persona(
        id="pirate.captain",
        name="Captain «Ünïcode»",
        description='Says "arr"',
        system_prompt='Line one.\n\tTabbed "quotes", a \\ backslash and """ triple quotes.\n',
        greeting="Ahoy!",
        default_chain=("openai", "fallback"),
        params=GenerationParams(temperature=0.9),
        colour="#A0b1C2",
    )
    plain = Persona(id="plain", name="Plain", params=GenerationParams())
    library = PersonaLibrary(tmp_path / "nested" / "personas")
    library.load()

    path = library.save(persona)
    library.save(plain)

    assert path == tmp_path / "nested" / "personas" / "pirate.captain.toml"
    # No temporary file is left behind.
    assert {p.name for p in path.parent.iterdir()} == {"pirate.captain.toml", "plain.toml"}
    again = PersonaLibrary(tmp_path / "nested" / "personas")
    again.load()
    assert again.problems == []
    assert again.personas["pirate.captain"] == persona
    assert again.personas["plain"] == plain
    assert again.origin("plain") is PersonaOrigin.USER


def test_builtins_cannot_be_overwritten_and_duplicate_makes_an_editable_copy(
    tmp_path: Path,
) -> None:
    library = PersonaLibrary(tmp_path)
    library.load()
    coach = library.personas["life-coach"]

    with pytest.raises(PersonaError, match="cannot be overwritten"):
        library.save(coach.model_copy(update={"name": "My coach"}))
    with pytest.raises(PersonaError, match="built-in persona and cannot be deleted"):
        library.delete("life-coach")
    assert list(tmp_path.iterdir()) == []

    copy = library.duplicate("life-coach")
    assert copy.id == "life-coach-copy" and copy.name == "Life Coach (copy)"
    assert copy.system_prompt == coach.system_prompt
    assert "life-coach-copy" not in library.personas  # not saved until the user saves it
    library.save(copy.model_copy(update={"greeting": "Hey there."}))
    assert library.duplicate("life-coach").id == "life-coach-copy-2"
    assert library.editable("life-coach-copy") and not library.editable("life-coach")

    library.delete("life-coach-copy")
    assert "life-coach-copy" not in library.personas
    assert list(tmp_path.iterdir()) == []
    assert library.personas["life-coach"] == coach


async def test_the_engine_uses_the_library(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = PersonaLibrary(tmp_path)
    library.save(Persona(id="router", name="Router", default_chain=("fallback",)))
    engine = Engine.start(host=pack_host(load=False), library=library)
    assert len(library.problems) == len(caplog.records) == 1  # the refused second bard
    caplog.clear()
    assert engine.library is library and engine.personas is library.personas
    assert {"router", "persona_pack:sage", *BUILTINS} <= set(engine.personas)

    session = engine.open_session(persona_id="router")
    assert session.chain == ("fallback",)
    assert engine.open_session().persona == ASSISTANT

    library.save(Persona(id="late", name="Late"))
    assert engine.persona("late") == Persona(id="late", name="Late")
    await engine.aclose()


async def test_changing_the_persona_changes_the_next_request_only(
    make_manager: MakeManager,
) -> None:
    first = Persona(id="first", name="First", system_prompt="You are the first.")
    second = Persona(
        id="second",
        name="Second",
        system_prompt="You are the second.",
        params=GenerationParams(temperature=0.2),
    )
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p")
    provider.push(Script(chunks=("one",)), Script(chunks=("two",), gate=gate))
    session = Session(make_manager(provider), chain=["p"], persona=first)

    await session.submit("q1")
    running = session.submit("q2")
    await provider.wait_for_calls(2)
    session.persona = second  # while q2 is being answered
    gate.set()
    await running
    third = await session.submit("q3")

    assert third.text == "re: q3"
    prompts = [call.messages[0].content for call in provider.calls]
    assert prompts == ["You are the first.", "You are the first.", "You are the second."]
    assert [call.persona for call in provider.calls] == [first, first, second]
    assert [call.params.temperature for call in provider.calls] == [None, None, 0.2]
    # The conversation itself carries on unchanged.
    assert [(m.role, m.content) for m in provider.calls[2].messages[1:]] == [
        (Role.USER, "q1"),
        (Role.ASSISTANT, "one"),
        (Role.USER, "q2"),
        (Role.ASSISTANT, "two"),
        (Role.USER, "q3"),
    ]


def test_two_packs_may_use_the_same_id_each_under_its_own_namespace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = PluginHost(
        entry_points=[
            EntryPoint(
                name=name, value=f"tests.core.sample_plugins.{name}", group=ENTRY_POINT_GROUP
            )
            for name in ("persona_pack", "other_pack")
        ]
    )
    host.load()
    library = PersonaLibrary(tmp_path)
    library.load(host)

    assert {"persona_pack:sage", "other_pack:sage"} <= set(library.personas)
    assert library.personas["other_pack:sage"].name == "Another Sage"
    assert all(record.state is PluginState.LOADED for record in host.records.values())
    caplog.clear()
