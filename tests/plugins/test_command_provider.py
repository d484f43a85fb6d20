"""The ``command`` provider running real child processes (small Python scripts in ``scripts/``)
through the real provider manager and sessions. Afterwards no process of the test may be left:
not running, and not unreaped (the ``no_leaked_children`` fixture checks the direct children)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from valis_command import CommandInstance, CommandProvider

from valis_desktop.api import ENTRY_POINT_GROUP, Persona
from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import EventKind, Status
from valis_desktop.core.session import Session

from .engine import TEST_KEY, MakeManager, answer, chunks_arrived

SCRIPTS = Path(__file__).parent / "scripts"
CHAIN = ["cli", "fallback"]


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / f"{name}.py"), *args]


def command(**settings: Any) -> CommandProvider:
    return CommandProvider(CommandInstance.model_validate({"id": "cli", "name": "CLI"} | settings))


@pytest.fixture
def pid_file(tmp_path: Path) -> Path:
    return tmp_path / "pids"


def recorded_pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()]


async def until_ended(pid: int) -> None:
    """Wait until the process ``pid`` has ended, though it need not be our child: its pidfd turns
    readable then. (A process killed with SIGKILL ends as soon as the kernel schedules it; the
    bound is for a test that would otherwise hang.)"""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # ended and reaped already
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(pidfd, lambda: None if ended.done() else ended.set_result(None))
    try:
        async with asyncio.timeout(10):
            await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


# Answers


async def test_the_answer_streams_as_the_command_prints_it(make_manager: MakeManager) -> None:
    manager = make_manager(command(argv=script("stream_words")))
    session = Session(manager, chain=CHAIN)
    chunks: list[str] = []
    session.subscribe(lambda e: chunks.append(e.chunk) if e.kind is EventKind.CHUNK else None)

    reply = await session.submit("tell me a story")
    await session.aclose()

    assert reply.status is Status.ANSWERED and reply.provider_id == "cli"
    assert reply.text == "You said: tell me a story "
    # as it comes: in several pieces (word by word, unless the machine is too busy to keep up)
    assert len(chunks) > 1 and "".join(chunks) == reply.text
    assert all(chunk.endswith(" ") for chunk in chunks)  # flushed words, never torn apart


async def test_the_conversation_goes_in_as_text(make_manager: MakeManager) -> None:
    manager = make_manager(command(argv=script("echo_input")))
    persona = Persona(id="p", name="P", system_prompt="Be brief.")
    session = Session(manager, chain=CHAIN, persona=persona)

    await session.submit("Hi")
    reply = await session.submit("Héllo\nagain")
    await session.aclose()

    assert reply.text == (
        "System: Be brief.\n\n"
        "User: Hi\n\n"
        "Assistant: System: Be brief.\n\nUser: Hi\n\n\n"
        "User: Héllo\nagain\n"
    )


async def test_the_conversation_goes_in_as_json(make_manager: MakeManager) -> None:
    manager = make_manager(command(argv=script("echo_input"), format="json"))
    persona = Persona(id="p", name="P", system_prompt="Be brief.")

    session = Session(manager, chain=CHAIN, persona=persona)
    reply = await session.submit("Grüße")
    await session.aclose()

    assert json.loads(reply.text) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Grüße"},
    ]


async def test_characters_split_across_writes_are_decoded_whole(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(command(argv=script("split_utf8")))

    reply = await answer(manager, CHAIN)

    assert reply.text == "Grüße, 世界! 🙂"


async def test_a_shell_command_with_a_pipe(make_manager: MakeManager) -> None:
    echo = " ".join(script("echo_input"))
    manager = make_manager(command(shell=True, command=f"{echo} | tr a-z A-Z"))

    reply = await answer(manager, CHAIN, "shout")

    assert reply.status is Status.ANSWERED and reply.text == "USER: SHOUT\n"


async def test_much_error_output_and_an_answer_before_the_input_do_not_deadlock(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(
        command(argv=script("flood_stderr")),
        CommandProvider(CommandInstance(id="eager", argv=script("answer_before_reading"))),
    )

    flooded = await answer(manager, CHAIN)
    eager = await answer(manager, ["eager"], "x" * 300_000)

    assert flooded.text == "done\n"
    assert eager.status is Status.ANSWERED
    assert eager.text.endswith(f" read {len('User: ') + 300_000 + 1} bytes\n")


async def test_the_instance_environment_and_directory_reach_the_command(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    printer = [sys.executable, "-c", "import os; print(os.environ['GREETING'], os.getcwd())"]
    manager = make_manager(command(argv=printer, cwd=str(tmp_path), env={"GREETING": "hi"}))

    reply = await answer(manager, CHAIN)

    assert reply.text == f"hi {tmp_path}\n"


# Failures


async def test_a_non_zero_exit_is_a_failure_with_the_last_lines_of_stderr(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(command(argv=script("fail_with_message")))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.ANSWERED and reply.provider_id == "fallback"
    outcome, message = reply.attempts[0][1:]
    assert outcome == "failure"
    assert message == (
        "CLI failed (exit status 3):\n"
        "loading layer 5\nloading layer 6\nloading layer 7\nloading layer 8\n"
        "error: the model file is damaged"
    )
    assert manager.breaker("cli").consecutive_failures == 1


async def test_a_missing_program_needs_attention(make_manager: MakeManager) -> None:
    manager = make_manager(command(argv=["valis-no-such-model-tool", "--fast"]))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0][1:] == (
        "needs attention",
        "The command 'valis-no-such-model-tool' of CLI was not found. Install it, or give its "
        "full path. Fix 'argv' of the instance 'cli' in the settings file.",
    )
    assert manager.breaker("cli").state is BreakerState.NEEDS_ATTENTION


async def test_a_program_that_is_not_executable_needs_attention(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    program = tmp_path / "model.sh"
    program.write_text("#!/bin/sh\necho hi\n")
    manager = make_manager(command(argv=[str(program)]))

    reply = await answer(manager, CHAIN)

    assert reply.attempts[0].outcome == "needs attention"
    assert "is not executable. Make it executable (chmod +x)" in reply.attempts[0].message


async def test_a_missing_working_directory_needs_attention(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    manager = make_manager(command(argv=script("echo_input"), cwd=str(tmp_path / "gone")))

    reply = await answer(manager, CHAIN)

    assert reply.attempts[0].outcome == "needs attention"
    message = reply.attempts[0].message
    assert message.startswith(f"The working directory {tmp_path / 'gone'} of CLI cannot be used")


async def test_a_shell_command_that_is_not_found_needs_attention(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(command(shell=True, command="valis-no-such-model-tool --fast"))

    reply = await answer(manager, CHAIN)

    outcome, message = reply.attempts[0][1:]
    assert outcome == "needs attention"
    assert message.startswith("The program CLI runs was not found (exit status 127):\n")
    assert "valis-no-such-model-tool" in message and message.endswith("in the settings file.")


async def test_a_command_that_prints_nothing_is_a_failure(make_manager: MakeManager) -> None:
    manager = make_manager(command(argv=[sys.executable, "-c", "pass"]))

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0][1:] == ("failure", "CLI finished without printing an answer.")


# Never left running


async def test_a_hanging_command_is_killed_at_the_timeout(
    make_manager: MakeManager, pid_file: Path
) -> None:
    provider = command(env={"VALIS_TEST_PIDS": str(pid_file)}, argv=script("hang"), timeout=0.5)
    manager = make_manager(provider)

    reply = await answer(manager, CHAIN)

    assert reply.provider_id == "fallback"
    assert reply.attempts[0][1:] == (
        "failure",
        "CLI took longer than 0.5 s and was stopped. Raise 'timeout' in its settings if it "
        "needs longer.",
    )
    assert provider.last_pid is not None
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(provider.last_pid, 0)


async def test_a_timeout_after_some_text_keeps_it(
    make_manager: MakeManager, pid_file: Path
) -> None:
    environment = {"VALIS_TEST_PIDS": str(pid_file)}
    manager = make_manager(command(env=environment, argv=script("hang", "--partial"), timeout=0.5))

    reply = await answer(manager, CHAIN)

    assert reply.status is Status.FAILED and reply.text == "Thinking"
    assert [a.provider_id for a in reply.attempts] == ["cli"]
    (pid,) = recorded_pids(pid_file)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("shell", [False, True], ids=["argv", "shell"])
async def test_stop_kills_the_command_and_everything_it_started(
    make_manager: MakeManager, pid_file: Path, shell: bool
) -> None:
    argv = script("hang", "--child", "--partial")
    settings: dict[str, Any] = (
        {"shell": True, "command": " ".join(argv)} if shell else {"argv": argv}
    )
    provider = command(env={"VALIS_TEST_PIDS": str(pid_file)}, **settings)
    manager = make_manager(provider)
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    session.stop()
    reply = await request
    await session.aclose()

    assert reply.status is Status.STOPPED and reply.text == "Thinking"
    assert manager.breaker("cli").consecutive_failures == 0
    assert provider.last_pid is not None
    with pytest.raises(ProcessLookupError):  # our own child: killed and reaped
        os.kill(provider.last_pid, 0)
    for pid in recorded_pids(pid_file):  # the command and its child, however deep: killed
        await until_ended(pid)


async def test_what_the_command_leaves_behind_is_killed_when_it_exits(
    make_manager: MakeManager, pid_file: Path, tmp_path: Path
) -> None:
    background = tmp_path / "background"
    hang, echo = " ".join(script("hang")), " ".join(script("echo_input"))
    line = f"{hang} & echo $! > {background}; {echo}"  # the background job holds the output
    environment = {"VALIS_TEST_PIDS": str(pid_file)}
    manager = make_manager(command(shell=True, command=line, env=environment, timeout=30))

    reply = await answer(manager, CHAIN, "bye")

    assert reply.status is Status.ANSWERED and reply.text == "User: bye\n"  # not a timeout
    await until_ended(int(background.read_text()))


async def test_a_daemon_holding_the_output_cannot_hold_up_the_answer(
    make_manager: MakeManager, pid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("valis_command.process.PIPES_GRACE", 0.1)
    environment = {"VALIS_TEST_PIDS": str(pid_file)}
    manager = make_manager(command(argv=script("daemon_holding_output"), env=environment))

    try:
        reply = await answer(manager, CHAIN)
    finally:
        (daemon,) = recorded_pids(pid_file)  # it left our process group: ours to end here
        os.kill(daemon, signal.SIGKILL)
        await until_ended(daemon)

    assert reply.status is Status.ANSWERED and reply.text == "hi\n"


async def test_closing_the_session_kills_the_command(
    make_manager: MakeManager, pid_file: Path
) -> None:
    provider = command(env={"VALIS_TEST_PIDS": str(pid_file)}, argv=script("hang", "--partial"))
    manager = make_manager(provider)
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    await session.aclose()

    assert request.result().status is Status.STOPPED
    (pid,) = recorded_pids(pid_file)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_managers_gap_timeout_kills_a_stalled_command(
    make_manager: MakeManager, pid_file: Path, clock: ManualClock
) -> None:
    provider = command(env={"VALIS_TEST_PIDS": str(pid_file)}, argv=script("hang", "--partial"))
    manager = make_manager(provider, gap_timeout=30.0)
    session = Session(manager, chain=CHAIN)
    request = session.submit("hello")
    await chunks_arrived(request, 1)

    clock.advance(31.0)
    reply = await request
    await session.aclose()

    assert reply.status is Status.FAILED and reply.text == "Thinking"
    assert reply.attempts == (("cli", "failure", "the answer stalled for 30 s"),)
    (pid,) = recorded_pids(pid_file)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# Settings


def load(settings: dict[str, Any], keychain: dict[str, str]) -> tuple[ProviderManager, list[str]]:
    host = PluginHost(
        builtins={},
        entry_points=entry_points(group=ENTRY_POINT_GROUP, name="command"),
        settings={"command": settings},
        secrets=lambda plugin, name: keychain.get(name) if plugin == "command" else None,
    )
    host.load()
    manager = ProviderManager()
    host.register_providers(manager)
    return manager, host.records["command"].problems


def test_instances_register_and_bad_ones_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    instances = [
        {"id": "llm", "argv": ["llm", "-m", "mini"], "limit": 2},
        {"id": "bad-1", "command": "llm -m mini"},
        {"id": "bad-2", "shell": True, "argv": ["llm"]},
        {"id": "bad-3", "argv": [], "format": "yaml"},
        {"id": "piped", "shell": True, "command": "llm | tee log", "name": "Piped"},
    ]

    manager, problems = load({"instances": instances}, {})

    assert manager.provider_ids == ("llm", "piped")
    llm = manager.provider("llm")
    assert llm.display_name == "llm (command)" and llm.default_concurrency == 2
    assert llm.description == "Runs `llm -m mini` with the conversation on its input."
    table = "[[plugins.command.instances]]"
    assert problems == [
        f"{table} number 2 (id 'bad-1') was skipped: set 'argv' (a list such as [\"llm\", "
        '"-m", "gpt-4o-mini"]); a \'command\' string is run only with shell = true. Fix it '
        "in the settings file.",
        f"{table} number 3 (id 'bad-2') was skipped: with shell = true, set 'command' (a "
        "string) and not 'argv'. Fix it in the settings file.",
        f"{table} number 4 (id 'bad-3') was skipped: argv: List should have at least 1 item "
        "after validation, not 0; format: Input should be 'text' or 'json'. Fix it in the "
        "settings file.",
    ]
    caplog.clear()
    assert load({}, {})[0].provider_ids == ()


async def test_the_key_reaches_the_command_through_its_variable_only(
    make_manager: MakeManager,
) -> None:
    printer = [sys.executable, "-c", "import os; print(os.environ['MODEL_KEY'] == 'sk-' + 'x')"]
    plugin_manager, problems = load(
        {"instances": [{"id": "cli", "argv": printer, "key_env": "MODEL_KEY"}]},
        {"cli": "sk-x"},
    )
    provider = plugin_manager.provider("cli")
    assert isinstance(provider, CommandProvider) and problems == []
    manager = make_manager(provider)

    reply = await answer(manager, CHAIN)

    assert reply.text == "True\n"
    assert "sk-x" not in repr(provider) and "sk-x" not in provider.description


async def test_a_key_the_command_complains_about_is_not_repeated(make_manager: MakeManager) -> None:
    complain = [sys.executable, "-c", "import os, sys; sys.exit('bad key ' + os.environ['K'])"]
    instance = CommandInstance(id="cli", argv=complain, key_env="K")
    manager = make_manager(CommandProvider(instance, key=TEST_KEY))

    reply = await answer(manager, CHAIN)

    assert reply.attempts[0][1:] == (
        "failure",
        "cli (command) failed (exit status 1):\nbad key [API key]",
    )


def test_a_key_variable_without_a_key_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    _, problems = load({"instances": [{"id": "cli", "argv": ["x"], "key_env": "UNSET_KEY_X"}]}, {})

    assert problems == [
        "The instance 'cli' passes its key in UNSET_KEY_X, but the keychain holds no key for "
        "it. Set the key in Settings."
    ]
    assert TEST_KEY not in caplog.text
    caplog.clear()
