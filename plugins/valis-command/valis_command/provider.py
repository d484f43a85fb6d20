"""A provider that runs a command-line model tool: the conversation on its standard input, its
standard output streamed as the answer."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

from valis_command.conversation import render
from valis_command.process import CommandRun
from valis_command.settings import CommandInstance
from valis_desktop.api import (
    ChatRequest,
    NeedsAttentionError,
    Provider,
    ProviderError,
    TransientError,
    redact,
)

_NOT_FOUND, _NOT_EXECUTABLE = 127, 126
"""What a shell (or ``env``) exits with when the program it should run is missing or cannot run."""


class CommandProvider(Provider):
    """One configured command (an instance of the ``command`` plugin).

    The command is killed with its whole process group when the answer is stopped, when it takes
    longer than the instance's ``timeout``, and when it has ended (anything it left behind); it
    is always reaped, so no process outlives its answer.
    """

    def __init__(self, instance: CommandInstance, key: str | None = None) -> None:
        """``key`` reaches the command in the variable ``instance.key_env`` names."""
        self.id = instance.id
        self.display_name = instance.display_name
        self.description = instance.description
        self.default_concurrency = instance.limit
        self.instance = instance
        self._key = key
        self.last_pid: int | None = None
        """The process id of the latest run (for tests and diagnostics)."""

    def __repr__(self) -> str:
        return f"<CommandProvider {self.id!r} {self.instance.command_line!r}>"

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        instance = self.instance
        loop = asyncio.get_running_loop()
        deadline = loop.time() + instance.timeout
        data = render(request.messages, instance.format)
        run = await CommandRun.start(instance, self._environment(), data)
        self.last_pid = run.pid
        printed = False
        try:
            try:
                while True:
                    async with asyncio.timeout_at(deadline):
                        piece = await run.read()
                    if piece is None:
                        break
                    if piece:
                        printed = True
                        yield piece
                async with asyncio.timeout_at(deadline):
                    status = await run.exit_status()
            except TimeoutError:
                raise TransientError(
                    f"{self.display_name} took longer than {instance.timeout:g} s and was "
                    "stopped. Raise 'timeout' in its settings if it needs longer."
                ) from None
            # A tool may quote the key it was given in its complaint.
            stderr = redact(run.stderr_tail(), self._key)
            failure = self._judge(status, printed, stderr)
            if failure is not None:
                raise failure
        finally:
            await run.close()

    def _environment(self) -> dict[str, str]:
        """The application's environment, the instance's ``env``, and the key."""
        environment = {**os.environ, **self.instance.env}
        if self.instance.key_env is not None and self._key:
            environment[self.instance.key_env] = self._key
        return environment

    def _judge(self, status: int, printed: bool, stderr: str) -> ProviderError | None:
        name = self.display_name
        said = f":\n{stderr}" if stderr else "."
        if status in (_NOT_FOUND, _NOT_EXECUTABLE):
            problem = "was not found" if status == _NOT_FOUND else "is not executable"
            return NeedsAttentionError(
                f"The program {name} runs {problem} (exit status {status}){said}\nFix the "
                f"command of the instance '{self.id}' in the settings file."
            )
        if status < 0:
            return TransientError(f"{name} was killed by {_signal_name(-status)}{said}")
        if status > 0:
            return TransientError(f"{name} failed (exit status {status}){said}")
        if not printed:
            return TransientError(f"{name} finished without printing an answer{said}")
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
