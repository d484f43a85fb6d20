"""A fault-injecting HTTP/1.1 server that speaks the OpenAI chat-completions and the Anthropic
messages wire protocols, streaming included, on 127.0.0.1.

Each request takes the next pushed ``Behaviour`` (an ordinary answer when none is pushed): answer,
fail with a status, hang before the first byte, stall or drop the connection part way, or send
malformed data. Nothing here waits for time: a hanging or stalled response waits until the client
goes away (which the server records) or the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

OPENAI_MODEL = "test-model"
ANTHROPIC_MODEL = "claude-test"


@dataclass
class Behaviour:
    """What the server does with one request."""

    chunks: Sequence[str] = ("Hello", ", world")
    status: int = 200
    """Anything but 200 answers with an error body of the protocol's shape."""
    message: str = "something went wrong"
    """The error message of a failing status or of an error event."""
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False
    """Send nothing at all, not even the status line."""
    stall_after: int | None = None
    """Send this many chunks, then nothing more."""
    close_after: int | None = None
    """Send this many chunks, then close the connection."""
    garbage_after: int | None = None
    """Send this many chunks, then ``garbage``."""
    garbage: bytes | None = None
    """By default an event of the protocol whose data is not JSON."""
    error_event_after: int | None = None
    """Send this many chunks, then an error event of type ``error_type``."""
    error_type: str = "overloaded_error"
    finish: bool = True
    """Whether the stream ends properly (finish reason and [DONE], or message_stop)."""
    usage: tuple[int, int] | None = (7, 2)
    reject_stream_options: bool = False
    """Answer 400 to a request that carries ``stream_options`` (an older server)."""


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


class FakeLLMServer:
    def __init__(self, key: str | None = None) -> None:
        self.key = key
        """The API key requests must carry (Bearer or x-api-key); ``None`` accepts any."""
        self.requests: list[Recorded] = []
        self.disconnects = 0
        """Clients that went away while the server was hanging or stalling for them."""
        self.errors: list[BaseException] = []
        """Failures of the server itself: a test that sees any has a broken server."""
        self.models = [OPENAI_MODEL, ANTHROPIC_MODEL]
        self._behaviours: deque[Behaviour] = deque()
        self._changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def push(self, *behaviours: Behaviour) -> None:
        self._behaviours.extend(behaviours)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and end every connection. Closing a connection ends its handler (its
        reads see the end of the stream): handlers are never cancelled, which Python 3.11's
        streams would log as an error."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_for_requests(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    async def wait_for_disconnects(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.disconnects >= count)

    # One connection: requests one after another (keep-alive).

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                await self._record(request)
                if not await self._respond(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _record(self, request: Recorded) -> None:
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    async def _until_gone(self, reader: asyncio.StreamReader) -> None:
        """Wait for the client to close the connection, and count it."""
        while await reader.read(4096):
            pass
        async with self._changed:
            self.disconnects += 1
            self._changed.notify_all()

    async def _respond(
        self,
        request: Recorded,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; ``False`` when the connection must not be used again."""
        protocol = _protocol(request)
        if self.key is not None and not _authorised(request, self.key):
            await _send_json(writer, 401, _error_body(protocol, 401, "invalid x-api-key"))
            return True
        if request.path == "/v1/models":
            await _send_json(writer, 200, _models(protocol, self.models))
            return True
        if request.path not in ("/v1/chat/completions", "/v1/messages"):
            await _send_json(writer, 404, _error_body(protocol, 404, "no such path"))
            return True
        behaviour = self._behaviours.popleft() if self._behaviours else Behaviour()
        if behaviour.hang:
            await self._until_gone(reader)
            return False
        if behaviour.reject_stream_options and "stream_options" in request.body:
            message = "Unrecognized request argument supplied: stream_options"
            await _send_json(writer, 400, _error_body(protocol, 400, message))
            return True
        if behaviour.status != 200:
            body = _error_body(protocol, behaviour.status, behaviour.message)
            await _send_json(writer, behaviour.status, body, behaviour.headers)
            return True
        if not request.body.get("stream"):
            await _send_json(writer, 200, _whole_answer(protocol, behaviour))
            return True
        return await self._stream(protocol, behaviour, reader, writer)

    async def _stream(
        self,
        protocol: str,
        behaviour: Behaviour,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        writer.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode())
        events = _openai_events if protocol == "openai" else _anthropic_events
        opening, parts, closing = events(behaviour)
        for event in opening:
            await _send_chunk(writer, event)
        for sent, part in enumerate(parts):
            if sent == behaviour.stall_after:
                await writer.drain()
                await self._until_gone(reader)
                return False
            if sent == behaviour.close_after:
                return False
            if sent == behaviour.garbage_after:
                await _send_chunk(writer, behaviour.garbage or _garbage(protocol))
                return await _end_chunks(writer)
            if sent == behaviour.error_event_after:
                await _send_chunk(writer, _error_event(protocol, behaviour))
                return await _end_chunks(writer)
            await _send_chunk(writer, part)
        if behaviour.finish:
            for event in closing:
                await _send_chunk(writer, event)
        return await _end_chunks(writer)


# HTTP


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    raw = await reader.readexactly(length) if length else b""
    body = json.loads(raw) if raw else {}
    return Recorded(method, path.split("?", 1)[0], headers, body)


def _authorised(request: Recorded, key: str) -> bool:
    headers = request.headers
    return headers.get("authorization") == f"Bearer {key}" or headers.get("x-api-key") == key


async def _send_json(
    writer: asyncio.StreamWriter, status: int, body: object, headers: Mapping[str, str] = {}
) -> None:
    data = json.dumps(body).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # 529, Anthropic's "overloaded"
        reason = "Overloaded"
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(data)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()


async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def _end_chunks(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


# Wire formats


def _protocol(request: Recorded) -> str:
    anthropic = request.path == "/v1/messages" or "anthropic-version" in request.headers
    return "anthropic" if anthropic else "openai"


def _sse(data: object, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


def _openai_events(behaviour: Behaviour) -> tuple[list[bytes], list[bytes], list[bytes]]:
    def chunk(choices: list[object], **extra: object) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": OPENAI_MODEL,
                "choices": choices,
                **extra,
            }
        )

    parts = [
        chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        for text in behaviour.chunks
    ]
    closing = [chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])]
    if behaviour.usage is not None:
        prompt, completion = behaviour.usage
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        closing.append(chunk([], usage=usage))
    closing.append(b"data: [DONE]\n\n")
    opening = [chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])]
    return opening, parts, closing


def _anthropic_events(behaviour: Behaviour) -> tuple[list[bytes], list[bytes], list[bytes]]:
    prompt, completion = behaviour.usage or (0, 0)
    message: dict[str, object] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": 1},
    }
    opening = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    parts = [
        _sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
            "content_block_delta",
        )
        for t in behaviour.chunks
    ]
    closing = [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": completion},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return opening, parts, closing


def _garbage(protocol: str) -> bytes:
    event = "event: content_block_delta\n" if protocol == "anthropic" else ""
    return f"{event}data: {{this is not json\n\n".encode()


def _error_event(protocol: str, behaviour: Behaviour) -> bytes:
    error = {"type": behaviour.error_type, "message": behaviour.message}
    if protocol == "anthropic":
        return _sse({"type": "error", "error": error}, "error")
    return _sse({"error": error})


def _error_body(protocol: str, status: int, message: str) -> object:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    kind = kinds.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


def _models(protocol: str, models: Sequence[str]) -> object:
    if protocol == "anthropic":
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in models
        ]
        first, last = (models[0], models[-1]) if models else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}
    listed = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in models]
    return {"object": "list", "data": listed}


def _whole_answer(protocol: str, behaviour: Behaviour) -> object:
    text = "".join(behaviour.chunks)
    prompt, completion = behaviour.usage or (0, 0)
    if protocol == "anthropic":
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": OPENAI_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
