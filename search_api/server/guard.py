"""Limits on slow and oversized HTTP requests, which uvicorn's httptools protocol lacks: a request's
headers must arrive within a deadline and a size, its body within another deadline; a connection that
never sends a byte is closed like a half-sent one. Answers are 408 and 431, then the connection closes.
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
        self._header_bytes = 0
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
        """Parse as uvicorn does; count the bytes of headers still being read and refuse too many."""
        if self._discarding:
            return
        if self._deadline is None and not self._in_headers and self._idle():
            self._begin_request()  # the first bytes of the next request on a kept-alive connection
        if self._in_headers:
            # Counted before parsing, up to the headers' end: headers that arrive whole in one read are parsed,
            # and the request answered, within this call. A header never finished still counts (and is bounded).
            end = data.find(b"\r\n\r\n")
            if self._over_limit(len(data) if end < 0 else end + 4):
                return
        super().data_received(data)
        if self._in_headers and self._header_bytes == 0 and not self.transport.is_closing():
            self._over_limit(len(data))  # a pipelined request began in this read: its headers' share, at most

    def on_message_begin(self) -> None:
        """A pipelined request starts its own header count."""
        super().on_message_begin()
        if not self._in_headers:
            self._begin_request()

    def on_headers_complete(self) -> None:
        """Headers done: the body now has body_timeout to arrive."""
        self._in_headers = False
        self._set_deadline(self.body_timeout, "the request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is read: no deadline while the app answers."""
        self._stop_deadline()
        super().on_message_complete()

    def _over_limit(self, more: int) -> bool:
        """Count `more` header bytes; refuse the request with 431 (True) once they pass max_header_bytes."""
        self._header_bytes += more
        if self._header_bytes <= self.max_header_bytes:
            return False
        self._refuse(431, f"request headers over {self.max_header_bytes} bytes (NEWSEARCH_MAX_HEADER_BYTES)")
        return True

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser cannot read gets the usual JSON error body (uvicorn's is plain text)."""
        self._refuse(400, f"{msg.rstrip('.')}: not HTTP/1.1 the server can parse (bytes outside ASCII in the "
                          "request line or a header name must be %-encoded)")

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _begin_request(self) -> None:
        self._in_headers, self._header_bytes = True, 0
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
        """Answer `status` with the usual JSON error (unless a response has begun) and close the connection."""
        self._stop_deadline()
        self._in_headers = False
        if self.transport.is_closing() or self._discarding:
            return
        # The cycle is the last request's until uvicorn starts the next at its headers' end: answer if it is done.
        if self.cycle is None or not self.cycle.response_started or self.cycle.response_complete:
            body = json.dumps({"detail": message, "field": None}).encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                                 b"connection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body))
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app, if reading the body, sees the client gone
            self.cycle.message_event.set()
        # Closing with the client's bytes unread would reset the connection, and a reset can drop the answer
        # before the client reads it: end our side, discard what still comes for a moment, then close.
        self._discarding = True
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
