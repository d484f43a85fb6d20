"""One run of a command: started in a process group of its own, its output read as it comes,
and always killed (with everything it started) and reaped, whatever the ending.

Built on the event loop's low-level subprocess API rather than ``asyncio.subprocess.Process``,
whose ``wait()`` also waits for the output pipes to close: a process that left the group (a
daemon) could hold them open and so hang a stop forever. Here the end of the command is known
the moment it exits, and pipes still held open after that are closed by us.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections import deque
from collections.abc import Mapping
from typing import cast

from valis_command.settings import CommandInstance
from valis_desktop.api import NeedsAttentionError

_STDOUT, _STDERR = 1, 2
_HIGH_WATER = 256 * 1024
"""Unread output beyond which the command's output pipe is not read (and so it waits)."""
_STDERR_KEPT = 16_384
_STDERR_LINES = 5
PIPES_GRACE = 2.0
"""Seconds the output may stay open after the command exited and its group was killed: only a
process that left the group can hold it. Then it is closed, and what it might write is lost."""


class _Pipes(asyncio.SubprocessProtocol):
    """What the command writes, and when it exits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self.errors_closed: asyncio.Future[None] = loop.create_future()
        self.errors = bytearray()
        self._loop = loop
        self._output: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == _STDOUT:
            self._output.append(data)
            self._buffered += len(data)
            if self._buffered >= _HIGH_WATER and not self._paused:
                self._paused = True
                self._pipe(_STDOUT).pause_reading()
            self._wake()
        elif fd == _STDERR:
            self.errors += data
            del self.errors[:-_STDERR_KEPT]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        closed = {_STDOUT: self.output_closed, _STDERR: self.errors_closed}.get(fd)
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._wake()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    async def read(self) -> bytes:
        """What the command wrote since the last read, as soon as there is some; ``b""`` once
        its output is closed."""
        while not self._output and not self.output_closed.done():
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._output)
        self._output.clear()
        self._buffered = 0
        if self._paused and not self.output_closed.done():
            self._paused = False
            self._pipe(_STDOUT).resume_reading()
        return data

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pipe(self, fd: int) -> asyncio.ReadTransport:
        assert self.transport is not None
        return cast(asyncio.ReadTransport, self.transport.get_pipe_transport(fd))


class CommandRun:
    """Use ``start``; always ``close``."""

    def __init__(self, transport: asyncio.SubprocessTransport, pipes: _Pipes) -> None:
        self.pid = transport.get_pid()
        self._transport = transport
        self._pipes = pipes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._grace: asyncio.TimerHandle | None = None
        pipes.exited.add_done_callback(self._ended)

    @classmethod
    async def start(
        cls, instance: CommandInstance, environment: Mapping[str, str], data: bytes
    ) -> CommandRun:
        """Start the command and hand it ``data`` on its standard input (then closed)."""
        loop = asyncio.get_running_loop()
        pipes = _Pipes(loop)
        pipe = asyncio.subprocess.PIPE
        env = dict(environment)
        # A group of its own (start_new_session), so that a stop also ends what the command
        # started (a shell's children), and a Ctrl+C in the terminal that started the app does
        # not reach it.
        try:
            if instance.shell:
                assert instance.command is not None
                transport, _ = await loop.subprocess_shell(
                    lambda: pipes,
                    instance.command,
                    stdin=pipe,
                    stdout=pipe,
                    stderr=pipe,
                    cwd=instance.cwd,
                    env=env,
                    start_new_session=True,
                )
            else:
                assert instance.argv is not None
                transport, _ = await loop.subprocess_exec(
                    lambda: pipes,
                    *instance.argv,
                    stdin=pipe,
                    stdout=pipe,
                    stderr=pipe,
                    cwd=instance.cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as error:
            raise _cannot_start(instance, error) from None
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        # The transport writes the input as the command reads it and closes the pipe after it:
        # a command that answers before it has read everything never deadlocks with us.
        stdin.write(data)
        stdin.close()
        return cls(transport, pipes)

    async def read(self) -> str | None:
        """The next piece of the answer as it arrives (possibly empty while a character is
        incomplete); ``None`` once the command's output is closed."""
        block = await self._pipes.read()
        if not block:
            rest = self._decoder.decode(b"", final=True)
            return rest or None
        return self._decoder.decode(block)

    async def exit_status(self) -> int:
        """Wait for the command to exit (and its error output to be read)."""
        await asyncio.shield(self._pipes.exited)
        await asyncio.shield(self._pipes.errors_closed)
        status = self._transport.get_returncode()
        assert status is not None
        return status

    def stderr_tail(self) -> str:
        """The last lines the command wrote to its error output."""
        text = self._pipes.errors.decode("utf-8", errors="replace")
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-_STDERR_LINES:])

    async def close(self) -> None:
        """Kill the command's whole process group (if anything of it is left), wait until the
        command has exited (it is reaped by then), and close the pipes."""
        _kill_group(self.pid)
        # Closing the transport while the command runs would make asyncio reap it behind the
        # child watcher's back: close it once the exit is known. Should this wait be cut short,
        # the grace timer set at the exit closes it.
        await asyncio.shield(self._pipes.exited)
        if self._grace is not None:
            self._grace.cancel()
        self._transport.close()

    def _ended(self, exited: asyncio.Future[None]) -> None:
        # Whatever the command left in its group goes with it. Pipes that a process outside the
        # group still holds are closed after a grace period.
        _kill_group(self.pid)
        self._grace = asyncio.get_running_loop().call_later(PIPES_GRACE, self._transport.close)


def _kill_group(pid: int) -> None:
    if hasattr(os, "killpg"):
        # The command leads its group (start_new_session): the group's id is its pid. Members
        # may outlive it (a shell's background children), so the group is killed even when the
        # command itself has ended.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _cannot_start(instance: CommandInstance, error: OSError) -> NeedsAttentionError:
    if instance.cwd is not None and error.filename == instance.cwd:
        return NeedsAttentionError(
            f"The working directory {instance.cwd} of {instance.display_name} cannot be used "
            f"({error.strerror}). Fix 'cwd' of the instance '{instance.id}' in the settings file."
        )
    program = instance.argv[0] if instance.argv else "the shell"
    where = f"Fix 'argv' of the instance '{instance.id}' in the settings file"
    if isinstance(error, FileNotFoundError):
        return NeedsAttentionError(
            f"The command '{program}' of {instance.display_name} was not found. Install it, "
            f"or give its full path. {where}."
        )
    if isinstance(error, PermissionError):
        return NeedsAttentionError(
            f"The command '{program}' of {instance.display_name} is not executable. Make it "
            f"executable (chmod +x), or run it through its interpreter. {where}."
        )
    return NeedsAttentionError(
        f"The command '{program}' of {instance.display_name} could not be started "
        f"({error.strerror or error}). {where}."
    )
