"""Limits on slow and oversized HTTP requests, which uvicorn's httptools protocol lacks: a request's
headers must arrive within a deadline and a size, its body within another deadline; a connection that
never sends a byte is closed like a half-sent one. Answers are 408 and 431 (400 for what the parser cannot read),
then the connection closes, after the answer to any request before it on the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from search_api.settings import ServerSettings

LINGER_SECONDS = 2.0  # how long a refused client's further bytes are read and dropped before closing
REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on reading a request and a cap on its header bytes."""

    max_header_bytes = 32768
    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._exact = 0  # header bytes of the request being read, from the parser's callbacks
        self._raw = 0  # bytes of the reads after the one it began in, while its headers are unfinished
        self._fresh = False  # a request began in the read being parsed
        self._oversized = False
        self._refusal: tuple[int, str] | None = None  # held until the last request's response is complete
        self._discarding = False  # refused: what the client still sends is read and dropped until we close

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept, and expect a request's headers within header_timeout (an idle client is closed too)."""
        super().connection_made(transport)
        self._begin_request()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline with the connection."""
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, counting each request's header bytes and refusing too many (431)."""
        if self._discarding:
            return
        if self._deadline is None and not self._in_headers and self._idle():
            self._begin_request()  # the first bytes of the next request on a kept-alive connection
        self._fresh = False
        super().data_received(data)  # the parser's callbacks count finished header lines exactly (on_header)
        if self._in_headers and not self._fresh and not self.transport.is_closing():
            # A header line never finished reaches no callback, so whole reads count too, except the one the
            # request began in (it may hold the last request's body): that bounds the bytes held, and a read
            # made only of header bytes can never count more than the request's headers.
            self._raw += len(data)
            if max(self._raw, self._exact) > self.max_header_bytes:
                self._refuse_oversized()

    def on_message_begin(self) -> None:
        """A request (pipelined or not) starts its own header count."""
        super().on_message_begin()
        if not self._in_headers:
            self._begin_request()
        self._exact, self._fresh = 0, True

    def on_url(self, url: bytes) -> None:
        """Count the request line's target."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header line (with its ": " and line end)."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, more: int) -> None:
        self._exact += more
        if self._exact > self.max_header_bytes:
            self._oversized = True
            raise ValueError("request headers too large")  # stops the parser: send_400_response answers 431

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser cannot read (or that _count stopped) gets the usual JSON error body."""
        if self._oversized:
            self._refuse_oversized()
            return
        self._refuse(400, f"{msg.rstrip('.')}: not HTTP/1.1 the server can parse (bytes outside ASCII in the "
                          "request line or a header name must be %-encoded)")

    def _refuse_oversized(self) -> None:
        self._refuse(431, f"request headers over {self.max_header_bytes} bytes (NEWSEARCH_MAX_HEADER_BYTES)")

    def on_headers_complete(self) -> None:
        """Headers done: the body now has body_timeout to arrive."""
        self._in_headers = False
        self._set_deadline(self.body_timeout, "the request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is read: no deadline while the app answers."""
        self._stop_deadline()
        super().on_message_complete()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _begin_request(self) -> None:
        self._in_headers, self._exact, self._raw = True, 0, 0
        self._set_deadline(self.header_timeout, "the request headers")

    def _set_deadline(self, seconds: float, what: str) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(seconds, self._too_slow, what, seconds)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, what: str, seconds: float) -> None:
        self._deadline = None
        setting = "NEWSEARCH_HEADER_TIMEOUT" if "headers" in what else "NEWSEARCH_BODY_TIMEOUT"
        self._refuse(408, f"{what} did not arrive within {seconds:g} s ({setting})")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with the usual JSON error and close the connection. While headers are read, the cycle
        is the last request's: if that one is still being answered, its response goes out first."""
        in_headers, self._in_headers = self._in_headers, False
        self._stop_deadline()
        if self.transport.is_closing() or self._discarding:
            return
        self._discarding = True  # what the client still sends is read and dropped
        if in_headers and self.cycle is not None and not self.cycle.response_complete:
            self._refusal = (status, message)  # sent by on_response_complete
            return
        if not in_headers and self.cycle is not None:
            self.cycle.disconnected = True  # the app, if reading the body, sees the client gone
            self.cycle.message_event.set()
        if in_headers or self.cycle is None or not self.cycle.response_started:
            self._send_error(status, message)
        self._linger_and_close()

    def on_response_complete(self) -> None:
        """The last request's response is out: send the refusal of the one after it, if any."""
        super().on_response_complete()
        if self._refusal is not None and not self.transport.is_closing():
            status, message = self._refusal
            self._refusal = None
            self._send_error(status, message)
            self._linger_and_close()

    def _send_error(self, status: int, message: str) -> None:
        body = json.dumps({"detail": message, "field": None}).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body))

    def _linger_and_close(self) -> None:
        # Closing with the client's bytes unread would reset the connection, and a reset can drop the answer
        # before the client reads it: end our side, discard what still comes for a moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded_protocol(settings: ServerSettings) -> type[GuardedProtocol]:
    """The protocol class uvicorn should use, with the settings' limits."""
    limits = {"max_header_bytes": settings.max_header_bytes, "header_timeout": settings.header_timeout,
              "body_timeout": settings.body_timeout}
    return type("ConfiguredGuardedProtocol", (GuardedProtocol,), limits)


def server_options(settings: ServerSettings) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for the limits of the settings (see docs/reliability.md)."""
    return {"http": guarded_protocol(settings), "limit_concurrency": settings.max_connections,
            "timeout_keep_alive": settings.keep_alive_timeout, "backlog": settings.max_connections}
