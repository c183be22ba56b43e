"""Slow and oversized requests against a real uvicorn server on 127.0.0.1 (issue 15, defect 4): idle and
half-sent connections are closed after the header deadline, a never-finished huge header gets 431 at the
size cap, a stalled body gets 408, and other clients are answered meanwhile. Bounded in count and time."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from tests.search_api.live_server import answer, connect, serve_index


@pytest.mark.slow
def test_slow_and_oversized_clients_are_cut_off_while_others_are_served(corpus_index, corpus_settings, embedder):
    settings = corpus_settings.replace(header_timeout=2.0, body_timeout=2.0, max_header_bytes=8192,
                                       reload_interval=0.0)
    with serve_index(corpus_index, settings, embedder) as base:
        idle = [connect(base) for _ in range(40)]
        half = [connect(base) for _ in range(40)]
        for sock in half:
            sock.sendall(b"GET /search?q=oil HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stalled = connect(base)
        stalled.sendall(b'POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                        b'Content-Length: 100\r\n\r\n{"q": "oil"')
        huge = connect(base)
        huge.sendall(b"GET /search?q=oil HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 200_000)
        whole = connect(base)  # finished headers over the cap, arriving in one read, are refused as well
        whole.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n")
        started = time.monotonic()
        with httpx.Client(base_url=base, timeout=30) as client:
            served = [client.get("/search", params={"q": "gas explosion", "k": 3}).status_code for _ in range(10)]
        assert served == [200] * 10  # answered while 82 slow clients hold connections

        garbled = connect(base)  # a raw byte outside ASCII in the request line: the parser's 400, as JSON
        garbled.sendall("GET /search?q=oil&k=٥ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        refused = answer(garbled)
        assert refused.startswith(b"HTTP/1.1 400 ") and b'"detail"' in refused, refused[:300]
        for sock in (huge, whole):
            oversized = answer(sock)
            assert oversized.startswith(b"HTTP/1.1 431 ") and b"NEWSEARCH_MAX_HEADER_BYTES" in oversized
        late_body = answer(stalled)
        assert late_body.startswith(b"HTTP/1.1 408 ") and b"NEWSEARCH_BODY_TIMEOUT" in late_body
        for sock in idle + half:
            reply = answer(sock)  # returns once the server closes it; the socket timeout (15 s) bounds the wait
            assert reply.startswith(b"HTTP/1.1 408 ") and b"NEWSEARCH_HEADER_TIMEOUT" in reply
            sock.close()
        assert time.monotonic() - started < 60  # every slow client was closed by the server, none by our timeout
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/search", params={"q": "oil"}).status_code == 200
            # a kept-alive connection that starts a second request and stalls is cut off too
            assert client.get("/healthz").status_code == 200
        # On a kept-alive connection, a second request whose whole headers pass the cap gets its 431 too.
        kept = connect(base)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
            first += kept.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n")
        second = answer(kept)
        assert second.startswith(b"HTTP/1.1 431 "), second[:200]
        kept.close()


def replies(sock: socket.socket) -> list[bytes]:
    """The status lines of every response on a connection, until the server closes it."""
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", answer(sock))  # a response may follow a body without a line end


@pytest.mark.slow
def test_header_bytes_are_counted_per_request_wherever_reads_split(corpus_index, corpus_settings, embedder):
    settings = corpus_settings.replace(max_header_bytes=8192, reload_interval=0.0)
    small = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    body = b'{"q": "election results", "k": 2' + b" " * 20_000 + b"}"
    post = b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    with serve_index(corpus_index, settings, embedder) as base:
        # Pipelined behind a small request in one read: the second request's headers still count.
        sock = connect(base)
        sock.sendall(small + big)
        assert replies(sock) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 431 Request Header Fields Too Large"]
        # Small headers whose end is split between two reads, then a large body: served, not taken for headers.
        for first, rest in ((post, b"\r\n" + body), (post + b"\r", b"\n" + body), (post[:-1], b"\n\r\n" + body)):
            sock = connect(base)
            sock.sendall(first)
            time.sleep(0.2)
            sock.sendall(rest + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert replies(sock) == [b"HTTP/1.1 200 OK"] * 2
        # A refused request behind one still being answered: that one's answer first, then the refusal.
        sock = connect(base)
        sock.sendall(b"GET /search?q=election+results&k=5 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.001)
        sock.sendall(b"GET /\x01 HTTP/1.1\r\n\r\n")
        assert replies(sock) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"]
