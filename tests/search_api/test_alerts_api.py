"""The alert routes over a real small index: keys, owners, bad input as 4xx, the feed, and webhooks POSTed to a
receiver on 127.0.0.1 that fails before it succeeds."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import feedparser
import pytest
from fastapi.testclient import TestClient

from indexer.alerts_store import AlertNotFound, AlertStore
from indexer.errors import BadQuery
from indexer.pipeline import build
from indexer.update import update
from search_api.alerts.worker import deliver
from search_api.client import NewsSearchClient
from search_api.holder import SearcherHolder
from search_api.server.app import create_app
from search_api.settings import ServerSettings
from tests.helpers import wikinews, write_jsonl
from tests.search_api.live_server import serve_index

ADMIN, KEY, OTHER = "admin-secret", "key-one", "key-two"


class Receiver:
    """An HTTP server on 127.0.0.1 that answers the first `failures` POSTs with 500, then 200, keeping each body."""

    def __init__(self, failures: int):
        self.failures, self.bodies = failures, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(500 if len(outer.bodies) <= outer.failures else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder):
    tmp = tmp_path_factory.mktemp("alerts-api")
    settings = ServerSettings(index_dir=tmp / "index", api_keys=(KEY, OTHER), admin_key=ADMIN, reload_interval=0,
                        alert_webhook_backoff=0.05, alert_webhook_attempts=3)
    build([write_jsonl(tmp / "a" / "a.jsonl", wikinews()[:8])], settings, embedder, progress=False)
    holder = SearcherHolder(settings, embedder)
    holder.load()
    app = create_app(settings, holder)
    with TestClient(app) as client:
        yield {"client": client, "settings": settings, "app": app, "tmp": tmp, "embedder": embedder}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_and_owners(served):
    client = served["client"]
    assert client.post("/alerts", json={"query": "gas explosion"}).status_code == 401
    assert client.get("/alerts").status_code == 401
    assert client.get("/alerts", headers={"X-Admin-Key": "wrong"}).status_code == 403
    mine = client.post("/alerts", json={"query": "gas explosion", "source": ["wire"]}, headers=auth(KEY))
    assert mine.status_code == 201, mine.text
    alert = mine.json()
    assert alert["query"] == "gas explosion" and alert["source"] == ["wire"] and alert["matches"] == 0
    assert client.get(f"/alerts/{alert['id']}", headers=auth(KEY)).json()["recent"] == []
    # Another key neither sees nor deletes it; the admin key sees every alert.
    assert alert["id"] not in [a["id"] for a in client.get("/alerts", headers=auth(OTHER)).json()]
    assert client.get(f"/alerts/{alert['id']}", headers=auth(OTHER)).status_code == 404
    assert client.delete(f"/alerts/{alert['id']}", headers=auth(OTHER)).status_code == 404
    assert alert["id"] in [a["id"] for a in client.get("/alerts", headers={"X-Admin-Key": ADMIN}).json()]
    assert client.delete(f"/alerts/{alert['id']}", headers=auth(KEY)).status_code == 204
    assert client.get(f"/alerts/{alert['id']}", headers=auth(KEY)).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"query": ""}, "query"), ({"query": "   "}, "query"), ({"mode": "dense"}, "query"), ({"query": "x", "webhook": "not a url"}, "webhook"),
    ({"query": "x", "webhook": "ftp://example.org/x"}, "webhook"), ({"query": "x", "min_relevance": 2}, "min_relevance"),
    ({"query": "x", "mode": "fuzzy"}, "mode"), ({"query": "x", "since": "2020-02-01", "until": "2020-01-01"}, "since"),
    ({"query": "x", "since": 2020}, "since"), ({"query": "x", "colour": "red"}, "colour"),
    ({"query": "x" * 1001}, "query"), ({"query": "x", "min_relevance": "NaN"}, "min_relevance"),
    ({"query": "x", "since": "2020-01-01x12:00"}, "since"),
])
def test_bad_input_is_422_naming_the_field(served, body, field):
    content = json.dumps(body).replace('"NaN"', "NaN")  # JSON's NaN, as Python's json module writes it
    r = served["client"].post("/alerts", content=content, headers={**auth(KEY), "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["detail"], r.text


def test_a_query_with_control_characters_is_stored_with_spaces_and_its_feed_is_xml(served):
    client = served["client"]
    alert = client.post("/alerts", json={"query": "gas\u0001explosion\ufffe"}, headers=auth(KEY)).json()
    assert alert["query"] == "gas explosion "
    feed = client.get(f"/alerts/{alert['id']}/feed.atom", headers=auth(KEY))
    assert feed.status_code == 200 and feedparser.parse(feed.text).feed.title
    assert client.delete(f"/alerts/{alert['id']}", headers=auth(KEY)).status_code == 204


def test_unknown_alert_is_404(served):
    client = served["client"]
    for path in ("/alerts/a0000", "/alerts/a0000/feed.atom"):
        r = client.get(path, headers=auth(KEY))
        assert r.status_code == 404 and "GET /alerts" in r.json()["detail"]
    assert client.delete("/alerts/a0000", headers=auth(KEY)).status_code == 404


def test_update_feed_and_webhook_that_fails_first(served):
    client, settings, records = served["client"], served["settings"], wikinews()
    receiver = Receiver(failures=1)
    try:
        body = {"query": records[9]["title"], "webhook": receiver.url}
        alert = client.post("/alerts", json=body, headers=auth(KEY)).json()
        update([write_jsonl(served["tmp"] / "b" / "a.jsonl", records[:12])], settings, served["embedder"],
               progress=False)
        client.post("/admin/reload", headers={"X-Admin-Key": ADMIN})
        served["app"].state.alerts.wake()
        deadline, detail = time.monotonic() + 120, {"deliveries": []}
        while time.monotonic() < deadline and [d["state"] for d in detail["deliveries"]] != ["delivered"]:
            time.sleep(0.2)  # the receiver answers before the server records the answer
            detail = client.get(f"/alerts/{alert['id']}", headers=auth(KEY)).json()
        assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
        sent = json.loads(receiver.bodies[-1])
        assert sent["alert_id"] == alert["id"] and records[9]["id"] in [m["article_id"] for m in sent["matches"]]
        assert detail["matches"] >= 1 and detail["deliveries"][0]["state"] == "delivered"
        assert detail["deliveries"][0]["attempts"] == 2 and detail["deliveries"][0]["last_error"] is None
        feed = client.get(f"/alerts/{alert['id']}/feed.atom", headers=auth(KEY))
        assert feed.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(feed.content)
        assert not parsed.bozo and records[9]["title"] in [e.title for e in parsed.entries]
    finally:
        receiver.close()


def test_webhook_gives_up_after_the_set_attempts(tmp_path, served):
    settings = served["settings"].replace(index_dir=tmp_path)
    receiver = Receiver(failures=100)
    store = AlertStore(tmp_path)
    try:
        alert = store.create("q", "", webhook=receiver.url)
        store.stage("v1", "v0", ["x"])
        store.mark_published("v1")
        assert store.record("v1", [], [(alert.id, receiver.url, '{"matches": []}')])
        for _ in range(50):  # bounded: three attempts with 0.05 s and 0.1 s between them
            deliver(store, settings)
            if not store.next_due():
                break
            time.sleep(0.05)
        (delivery,) = store.deliveries(alert.id)
        assert delivery.state == "failed" and delivery.attempts == 3 and delivery.last_error == "HTTP 500"
        assert len(receiver.bodies) == 3
    finally:
        store.close()
        receiver.close()


class RawReceiver:
    """A TCP server on 127.0.0.1 whose `answer(conn)` writes whatever it likes after reading one request."""

    def __init__(self, answer):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.requests, self.sent, self.done = 0, 0, threading.Event()

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = self.sock.accept()
                    self.requests += 1
                    with conn, contextlib.suppress(OSError):
                        conn.recv(65536)
                        answer(self, conn)
                    self.done.set()

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def one_delivery(store: AlertStore, url: str, version: str = "v1") -> str:
    alert = store.create("q", "", webhook=url)
    store.stage(version, "v0", ["x"])
    store.mark_published(version)
    store.record(version, [], [(alert.id, url, '{"matches": []}')])
    return alert.id


def test_a_webhook_answer_is_never_read_into_memory(tmp_path, served):
    def endless(receiver: RawReceiver, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(300_000_000 // len(chunk)):  # until the server hangs up
            conn.sendall(chunk)
            receiver.sent += len(chunk)

    receiver, store = RawReceiver(endless), AlertStore(tmp_path)
    try:
        alert_id = one_delivery(store, receiver.url)
        assert deliver(store, served["settings"].replace(index_dir=tmp_path)) == 1
        assert receiver.done.wait(30)
        assert receiver.sent < 30_000_000, receiver.sent  # what the sockets' buffers took: the body was not read
        assert store.deliveries(alert_id)[0].state == "delivered"
    finally:
        store.close()
        receiver.close()


def test_a_webhook_that_answers_a_byte_at_a_time_fails_at_the_timeout_and_holds_up_no_other(tmp_path, served):
    def drip(receiver: RawReceiver, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")  # each byte well within the read timeout, the headers never done
        for _ in range(150):
            time.sleep(0.2)
            conn.sendall(b"a")  # raises once the server hangs up
            receiver.sent += 1

    settings = served["settings"].replace(index_dir=tmp_path, alert_webhook_timeout=3.0)
    slow, fine, store = RawReceiver(drip), Receiver(failures=0), AlertStore(tmp_path)
    try:
        slow_id, fine_id = one_delivery(store, slow.url, "v1"), one_delivery(store, fine.url, "v2")
        assert deliver(store, settings) == 1
        (late,), (sent,) = store.deliveries(slow_id), store.deliveries(fine_id)
        assert (late.state, late.last_error) == ("pending", "no answer within 3 s")
        assert sent.state == "delivered" and len(fine.bodies) == 1
        assert slow.done.wait(30) and slow.sent < 150  # the server hung up at its deadline, not after the trickle
    finally:
        store.close()
        slow.close()
        fine.close()


def test_a_webhook_url_httpx_cannot_send_to_is_that_deliverys_error(tmp_path, served):
    store = AlertStore(tmp_path)
    try:
        alert_id = one_delivery(store, "http://exa\x00mple.org/hook")
        assert deliver(store, served["settings"].replace(index_dir=tmp_path)) == 0
        (failed,) = store.deliveries(alert_id)
        assert failed.state == "pending" and failed.last_error.startswith("InvalidURL"), failed.last_error
    finally:
        store.close()


def test_a_delivery_of_an_alert_deleted_meanwhile_is_not_sent(tmp_path, served):
    settings, later = served["settings"].replace(index_dir=tmp_path), []

    def delete_the_other(receiver: RawReceiver, conn: socket.socket) -> None:
        other = AlertStore(tmp_path)  # a DELETE /alerts/{id} while this POST is in flight
        other.delete(later[0])
        other.close()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    first, second, store = RawReceiver(delete_the_other), Receiver(failures=0), AlertStore(tmp_path)
    try:
        one_delivery(store, first.url, "v1")
        later.append(one_delivery(store, second.url, "v2"))
        assert deliver(store, settings, at_once=1) == 1
        assert first.requests == 1 and second.bodies == []
    finally:
        store.close()
        first.close()
        second.close()


def test_client_methods(served):
    settings = served["settings"]
    with serve_index(settings.index_dir, settings, served["embedder"]) as url, \
            NewsSearchClient(url, api_key=OTHER, timeout=60) as client:
        alert = client.create_alert("wildfire evacuation", mode="dense", since=date(2019, 1, 1), source="wire",
                                    min_relevance=0.1)
        assert alert["mode"] == "dense" and alert["since"] == "2019-01-01" and alert["source"] == ["wire"]
        assert [a["id"] for a in client.alerts()] == [alert["id"]]
        assert client.alert(alert["id"])["recent"] == []
        assert not feedparser.parse(client.alert_feed(alert["id"])).bozo
        with pytest.raises(BadQuery) as bad:
            client.create_alert("x", webhook="file:///etc/passwd")
        assert bad.value.field == "webhook"
        with pytest.raises(BadQuery):
            client.create_alert("x", colour="red")
        client.delete_alert(alert["id"])
        with pytest.raises(AlertNotFound):
            client.alert(alert["id"])


@pytest.mark.slow
def test_admin_reindex_evaluates_alerts(served):
    """POST /admin/reindex runs `news-index update` in a process of its own; the server then evaluates its batch."""
    client, records, admin = served["client"], wikinews(), {"X-Admin-Key": ADMIN}
    alert = client.post("/alerts", json={"query": records[13]["title"]}, headers=auth(KEY)).json()
    corpus = write_jsonl(served["tmp"] / "c" / "a.jsonl", records[:14])
    job = client.post("/admin/reindex", json={"paths": [str(corpus)]}, headers=admin).json()
    deadline = time.monotonic() + 300
    recent: list = []
    while not recent and time.monotonic() < deadline:
        time.sleep(0.5)
        state = client.get(f"/admin/jobs/{job['id']}", headers=admin).json()
        assert state["state"] != "failed", state["error"]
        recent = client.get(f"/alerts/{alert['id']}", headers=auth(KEY)).json()["recent"]
    state = client.get(f"/admin/jobs/{job['id']}", headers=admin).json()
    assert records[13]["id"] in [m["article_id"] for m in recent]
    assert {m["article_id"] for m in recent} <= {r["id"] for r in records[8:14]}  # the fixture indexed 8
    assert state["state"] == "succeeded" and {m["version"] for m in recent} == {state["result"]["version"]}
