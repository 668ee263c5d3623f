"""Serving long streamed responses under Django's ASGI handler: a body handed to the
handler as bytes, a part sent whole when it fits, the request's own thread let go while
the stream is open (an SSE watcher may watch for hours), and a way to write a part to the
client's connection without going through the response's task (`DirectWriter`)."""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.core.handlers.asgi import ASGIHandler
from django.http import StreamingHttpResponse

_T = TypeVar("_T")


class EventStreamResponse(StreamingHttpResponse):
    """The SSE response of `stream_run_events`, whose body is bytes already: Django's ASGI
    handler takes its parts straight from the generator, not through StreamingHttpResponse's
    two wrapping async generators (one converting each part to bytes), which every delivery
    to every watcher passed through."""

    def __init__(
        self, body: AsyncIterator[bytes], *, writer: DirectWriter | None = None, **kwargs: Any
    ) -> None:
        super().__init__(body, content_type="text/event-stream", **kwargs)
        self.sse_body = body
        # Attached to the connection by StreamingASGIHandler once the response is sent.
        self.writer = writer or DirectWriter()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.sse_body


class StreamingASGIHandler(ASGIHandler):
    """Django's ASGI handler, with a cheaper way to cut a response part no larger than a
    body message: a stream hands it one part per delivery, and Django's own chunk_bytes
    (a generator, sliced) ran for each delivery to each watcher."""

    async def send_response(self, response: Any, send: Any) -> None:
        if isinstance(response, EventStreamResponse):
            response.writer.attach(send)
        await super().send_response(response, send)

    @classmethod
    def chunk_bytes(cls, data: Sequence[_T]) -> Iterator[tuple[Sequence[_T], bool]]:
        if 0 < len(data) <= cls.chunk_size:
            return iter(((data, True),))
        return super().chunk_bytes(data)


class DirectWriter:
    """Writes a part of a streamed body straight to the client's connection, from outside
    the response's task: a live event goes to each of a run's waiting streams from the loop
    that received it, one transport write per watcher, instead of waking every watcher's task
    to pass the part through the generator, Django's send loop and the server's `send`.

    Only under uvicorn's httptools protocol (what `manage.py start` runs), whose `send` is
    a method of the request's cycle: the part is written as that `send` writes a body part
    in chunked transfer-encoding. Anywhere else, and whenever the connection cannot take it
    at once (the client is slow and the server paused writing, or it is gone), `write`
    answers False and the caller sends the part through the response as usual."""

    __slots__ = ("_cycle",)

    def __init__(self) -> None:
        self._cycle: Any = None

    def attach(self, send: Any) -> None:
        cycle: Any = getattr(send, "__self__", None)
        kind = type(cycle)
        if (
            kind.__name__ == "RequestResponseCycle"
            and kind.__module__ == "uvicorn.protocols.http.httptools_impl"
            and getattr(cycle, "send", None) == send
            # What write() reads: another uvicorn may name them otherwise (then: no writes).
            and all(hasattr(cycle, name) for name in _CYCLE_STATE)
            and hasattr(cycle.flow, "write_paused")
        ):
            self._cycle = cycle

    def write(self, chunk: bytes) -> bool:
        """Write `chunk`, a body part already framed by `chunked()`, after what the response
        sent so far; False when it was not written (the caller sends it otherwise)."""
        cycle = self._cycle
        if (
            cycle is None
            or cycle.chunked_encoding is not True
            or not cycle.response_started
            or cycle.response_complete
            or cycle.disconnected
            or cycle.flow.write_paused
        ):
            return False
        transport = cycle.transport
        if transport.is_closing():
            return False
        try:
            transport.write(chunk)
        except (OSError, RuntimeError):
            return False
        return True


_CYCLE_STATE = (
    "chunked_encoding",
    "response_started",
    "response_complete",
    "disconnected",
    "flow",
    "transport",
)


def chunked(body: bytes) -> bytes:
    """`body` as one chunk of chunked transfer-encoding, for DirectWriter.write."""
    return b"%x\r\n%s\r\n" % (len(body), body)


def release_request_thread() -> None:
    """Let the thread Django's ASGI handler keeps for this request go.

    The handler runs each request in an asgiref ThreadSensitiveContext whose one-thread
    executor (created by the first sync middleware or sync ORM call of the request) lives
    until the response ends: for an SSE stream, as long as the watcher watches, so every
    open stream held an idle OS thread. A stream needs it no more once its body is being
    sent. What the handler still runs in that context afterwards (the response's close, or
    the request_finished signal of a watcher gone) goes to `ReleasedExecutor`: had the
    context no executor, it would start a thread for that one call, and another to join it
    when the request ends, and every stream of a run ends at once, on its terminal event."""
    from asgiref.sync import SyncToAsync

    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executors = SyncToAsync.context_to_thread_executor
    executor = executors.pop(context, None)
    if executor is not None and not isinstance(executor, ReleasedExecutor):
        executor.shutdown(wait=False)
    executors[context] = ReleasedExecutor(context)


class ReleasedExecutor(Executor):
    """The thread-sensitive executor of a request whose own thread was released: runs the
    calls on one thread that every such request of the process shares, and is never shut
    down. Its first call removes it from its context, so that the context's end finds no
    executor to join (asgiref joins one in a thread of its own); a later call in the same
    context gets a fresh executor of its own, as in any request."""

    def __init__(self, context: Any) -> None:
        self._context = weakref.ref(context)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        from asgiref.sync import SyncToAsync

        context = self._context()
        if context is not None:
            executors = SyncToAsync.context_to_thread_executor
            if executors.get(context) is self:
                del executors[context]
        return _released_pool().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The shared thread serves other requests: nothing to shut down."""


_RELEASED_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _released_pool() -> ThreadPoolExecutor:
    """This process's one thread for released requests' remaining sync calls (a pool made
    before a fork has no thread in the child)."""
    global _RELEASED_POOL
    pid = os.getpid()
    if _RELEASED_POOL is None or _RELEASED_POOL[0] != pid:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-released-request")
        _RELEASED_POOL = (pid, pool)
    return _RELEASED_POOL[1]
