"""A bounded mixed load on a real server (issue 15): every mode, filters and pages, with slow and half-open
clients beside it: no errors, every slow client cut off with a 408, resident memory flat after the warm-up."""

from __future__ import annotations

import pytest

from bench.http_load import free_port, start_server
from bench.load_mixed import measure


@pytest.mark.slow
def test_a_mixed_load_with_slow_clients_has_no_errors_and_flat_memory(corpus_index, tmp_path):
    port = free_port()
    server = start_server(corpus_index, port, {"NEWSEARCH_HEADER_TIMEOUT": "2"}, tmp_path / "serve.log", 180)
    try:
        run = measure(port, server.pid, clients=8, slow=4, seconds=8, warmup_seconds=4)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run["ok"] > 0 and run["errors"] == 0, run["error_kinds"]
    assert run["mean_hits"] > 0
    answers = run["slow_client_answers"]
    assert answers.get("HTTP/1.1 408", 0) >= 4, answers  # each slow client was cut off at least once
    assert set(answers) <= {"HTTP/1.1 408", "still open at the end"}, answers
    assert run["server_memory"]["growth_after_warmup"] < 0.10, run["server_memory"]
