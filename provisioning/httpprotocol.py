"""uvicorn's httptools protocol with a deadline for receiving each request (slowloris).

uvicorn 0.54 bounds only the idle time between requests (`timeout_keep_alive`), and any
byte received cancels it: a client that sends its request line and headers a byte every
few seconds, or opens a connection and sends nothing, holds a socket and a protocol
object for as long as it likes. ASGI middleware cannot help: it runs only once the
headers are in.

Here a connection's clock starts when it opens, and again at the first byte after each
complete request; it stops when the whole request, body included, has arrived. When it
runs out first, the server answers 408 (RFC 9110 section 15.5.9) unless part of a
response is already on the wire, and closes the connection. The time a handler takes
does not count: only the time the client takes to deliver its request.

One limit: a pipelined request that arrives while the previous one is being answered
runs on its own clock, so a slow handler ahead of an unfinished pipelined request can be
cut with it. Browsers and HTTP libraries do not pipeline.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0
_BODY = b"request not received in time\n"
_REQUEST_TIMEOUT = b"".join(
    [
        STATUS_LINE[408],
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_BODY),
        b"connection: close\r\n",
    ]
)


def _request_timeout() -> bytes:
    date = email.utils.formatdate(usegmt=True).encode()
    return _REQUEST_TIMEOUT + b"date: " + date + b"\r\n\r\n" + _BODY


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(
        self, *args: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_in = False  # of the request being received

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first byte after a complete request
            self._start_clock()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_in = False
        if self._deadline is None:  # begun in the same read as the previous one ended
            self._start_clock()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._headers_in = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_clock()

    def _start_clock(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout, self._timed_out)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle  # this request's once its headers are in, else the previous one's
        if self._headers_in:  # not answered yet, and not queued behind another response
            unanswered = not cycle.response_started and not self.pipeline
        else:
            unanswered = cycle is None or cycle.response_complete
        if unanswered:
            if self._headers_in:
                cycle.disconnected = True  # the application, waiting for the body, stops
            self.transport.write(_request_timeout())
        self.transport.close()


def protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """For `uvicorn.Config(http=...)`, which calls it as a class with uvicorn's protocol
    arguments; a partial, not a class made here, so that worker processes can unpickle
    it (`credbroker api --workers N`)."""
    factory = functools.partial(HeaderTimeoutProtocol, header_timeout=header_timeout)
    return cast("type[asyncio.Protocol]", factory)
