"""uvicorn's httptools protocol, bounded: a deadline and a size cap for each request's
arrival (slowloris, huge headers), and errors as problem+json.

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

The request line and headers are capped at `MAX_HEADER_BYTES` (431, RFC 6585 section
5), and what httptools cannot parse gets uvicorn's 400: both, like the 408, as the
API's problem+json (`provisioning.http.problem`).

Over TLS, each request's scope carries the ASGI TLS extension (`scope["extensions"]
["tls"]`, asgiref's "TLS Extension"), which uvicorn does not set: `client_cert_chain` is
the client certificate the handshake verified (PEM; the leaf only, all that Python's ssl
module gives before 3.13), or empty. `provisioning.mtls` reads it.

One limit: a pipelined request that arrives while the previous one is being answered
runs on its own clock, so a slow handler ahead of an unfinished pipelined request can be
cut with it. Browsers and HTTP libraries do not pipeline.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ssl
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from provisioning.http import PROBLEM

DEFAULT_HEADER_TIMEOUT = 10.0
# Request line and headers. httptools sets no limit (h11's default is 16 KiB): a header
# of a few hundred megabytes was buffered whole, as fast as the network brought it.
MAX_HEADER_BYTES = 64 * 1024
# After a refusal, what the client still sends is read and dropped this long before the
# connection closes: closing with unread data sends a TCP reset, which can destroy the
# answer before the client reads it (Apache's "lingering close").
LINGER = 2.0


Problem = tuple[int, str, str, str]  # status, title, detail, error


def _response(problem: Problem) -> bytes:
    """A complete problem+json response that closes the connection, as `http.problem`."""
    status, title, detail, error = problem
    body = orjson.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, "error": error}
    )
    date = email.utils.formatdate(usegmt=True).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: " + PROBLEM.encode() + b"\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        b"date: " + date + b"\r\n\r\n",
    ]
    return b"".join([*head, body])


_TOO_LARGE: Problem = (
    431,
    "Request header fields too large",
    f"the request line and headers are capped at {MAX_HEADER_BYTES} bytes",
    "headers_too_large",
)


class BoundedProtocol(HttpToolsProtocol):
    def __init__(
        self, *args: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_in = False  # of the request being received
        self._header_bytes = 0  # received of the request line and headers being received
        self._refusal: Problem | None = None  # raised from a parser callback, sent here
        self._lingering = False
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension of this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = _tls_extension(transport.get_extra_info("ssl_object"))
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._deadline is None:  # the first byte after a complete request
            self._start_clock()
        super().data_received(data)
        if self._headers_in or self._lingering or self.transport.is_closing():
            return
        self._header_bytes += len(data)  # all of it: the headers did not end in it
        if self._header_bytes > MAX_HEADER_BYTES:  # what is buffered, not yet parsed
            self._refuse(_TOO_LARGE)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown. An idle connection over TLS is aborted rather than
        closed: closing waits up to 30 s (asyncio's SSL shutdown timeout) for the
        client's close_notify, which an idle keep-alive client sends only when it next
        reads, and the server would wait for it before exiting."""
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("ssl_object") is not None:
            self.transport.abort()
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, or to a refusal raised from a
        parser callback (httptools turns any exception there into a parser error)."""
        self._refuse(self._refusal or (400, "Bad request", msg, "invalid_http_request"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": cast("dict[object, object]", self._tls)}
        self._headers_in = False
        if self._deadline is None:  # begun in the same read as the previous one ended
            self._start_clock()

    def on_headers_complete(self) -> None:
        # Headers that arrived in one read with their end are measured here, parsed.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEADER_BYTES:
            self._refusal = _TOO_LARGE
            raise ValueError("headers too large")  # before uvicorn starts the application
        super().on_headers_complete()
        self._headers_in, self._header_bytes = True, 0

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
        if not self.transport.is_closing():
            detail = f"the request was not received within {self.header_timeout:g} s"
            self._refuse((408, "Request timeout", detail, "request_timeout"))

    def _refuse(self, problem: Problem) -> None:
        """Answer unless part of a response is already on the wire; close."""
        self._stop_clock()
        cycle = self.cycle  # this request's once its headers are in, else the previous one's
        if self._headers_in:  # not answered yet, and not queued behind another response
            unanswered = not cycle.response_started and not self.pipeline
        else:
            unanswered = cycle is None or cycle.response_complete
        if not unanswered or not self.transport.can_write_eof():
            self.transport.close()
            return
        if self._headers_in:
            cycle.disconnected = True  # the application, waiting for the body, stops
            cycle.message_event.set()
        self.transport.write(_response(problem))
        self.transport.write_eof()
        self._lingering = True
        self.loop.call_later(LINGER, self.transport.close)


def _tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection (None over plain TCP); made once per
    connection, when its handshake is done."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """For `uvicorn.Config(http=...)`, which calls it as a class with uvicorn's protocol
    arguments; a partial, not a class made here, so that worker processes can unpickle
    it (`credbroker api --workers N`)."""
    factory = functools.partial(BoundedProtocol, header_timeout=header_timeout)
    return cast("type[asyncio.Protocol]", factory)
