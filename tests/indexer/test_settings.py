"""The one settings object: env variables, flags on top, clear errors."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest

from indexer.errors import ConfigError
from indexer.settings import RANGES, Settings
from search_api.settings import SERVER_RANGES, ServerSettings, unknown_variables


def test_env_then_flags():
    env = {"NEWSEARCH_INDEX_DIR": "/data/idx", "NEWSEARCH_PORT": "9000", "NEWSEARCH_API_KEYS": "a, b",
           "NEWSEARCH_RRF_K": "30", "OTHER": "x"}
    s = ServerSettings.from_env(env, port=9100, host=None)
    assert s.index_dir == Path("/data/idx") and s.port == 9100 and s.api_keys == ("a", "b") and s.rrf_k == 30
    assert s.host == "127.0.0.1"
    # The indexer reads the same variables and never sees the server's
    indexer = Settings.from_env(env)
    assert indexer.rrf_k == 30 and not hasattr(indexer, "port") and not hasattr(indexer, "api_keys")


@pytest.mark.parametrize("env, message", [
    ({"NEWSEARCH_PORT": "eighty"}, "NEWSEARCH_PORT='eighty' is not a valid int"),
    ({"NEWSEARCH_MAX_K": "1_0"}, "NEWSEARCH_MAX_K='1_0' is not a valid int"),  # int() would read ten
    ({"NEWSEARCH_DENSE_WEIGHT": "1_0.5"}, "NEWSEARCH_DENSE_WEIGHT='1_0.5' is not a valid float"),
    ({"NEWSEARCH_PORT": "0"}, r"NEWSEARCH_PORT must be between 1 and 65535 \(a TCP port number\), not 0"),
    ({"NEWSEARCH_MAX_BODY_BYTES": "10"}, "NEWSEARCH_MAX_BODY_BYTES must be between 1024 and"),
    ({"NEWSEARCH_FIELDS": "title"}, "NEWSEARCH_FIELDS must be one of"),
    ({"NEWSEARCH_CHUNK_TOKENS": "1000"}, "NEWSEARCH_CHUNK_TOKENS"),
    ({"NEWSEARCH_MAX_CONNECTIONS": "9" * 20}, "NEWSEARCH_MAX_CONNECTIONS must be between 1 and 1,000,000"),
    # Set, but to no usable key: search would stay open, or every admin request would be a 401.
    ({"NEWSEARCH_API_KEYS": " , "}, r"NEWSEARCH_API_KEYS=' , ' lists nothing; leave it unset"),
    ({"NEWSEARCH_ADMIN_KEY": " "}, "NEWSEARCH_ADMIN_KEY holds a key that is blank"),
    ({"NEWSEARCH_ADMIN_KEY": "s3cret "}, "NEWSEARCH_ADMIN_KEY holds a key that is blank or begins or ends with spaces"),
    ({"NEWSEARCH_CORS_ORIGINS": "not a url,*"}, "NEWSEARCH_CORS_ORIGINS: 'not a url' is not an origin"),
    ({"NEWSEARCH_CORS_ORIGINS": "https://news.example/page"}, "is not an origin; give scheme://host"),
    ({"NEWSEARCH_CORS_ORIGINS": "http://*.example.com"}, "is not an origin"),  # compared as written: never matches
    ({"NEWSEARCH_CORS_ORIGINS": "http://x:99999"}, "is not an origin"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        ServerSettings.from_env(env)


@pytest.mark.parametrize("env, message", [
    ({"NEWSEARCH_RRF_K": "-1"}, r"NEWSEARCH_RRF_K must be between 1 and 1,000,000 \(.*\), not -1"),
    ({"NEWSEARCH_RRF_K": "0"}, "NEWSEARCH_RRF_K must be between 1 and"),
    ({"NEWSEARCH_CANDIDATES": "0"}, "NEWSEARCH_CANDIDATES must be between 1 and 10000"),
    ({"NEWSEARCH_CANDIDATES": "50"}, r"NEWSEARCH_CANDIDATES \(50\) must be at least NEWSEARCH_MAX_K \(100\)"),
    ({"NEWSEARCH_DENSE_WEIGHT": "0", "NEWSEARCH_KEYWORD_WEIGHT": "0"}, "cannot both be 0"),
    ({"NEWSEARCH_KEYWORD_WEIGHT": "-0.5"}, "NEWSEARCH_KEYWORD_WEIGHT must be between 0 and"),
    ({"NEWSEARCH_DENSE_WEIGHT": "nan"}, "NEWSEARCH_DENSE_WEIGHT must be between 0 and .*, not nan"),
    ({"NEWSEARCH_POOL_TEMPERATURE": "inf"}, "NEWSEARCH_POOL_TEMPERATURE must be between 0 and"),
    ({"NEWSEARCH_MAX_K": "0"}, "NEWSEARCH_MAX_K must be between 1 and"),
    ({"NEWSEARCH_MAX_QUERY_CHARS": "0"}, "NEWSEARCH_MAX_QUERY_CHARS must be between 1 and"),
    ({"NEWSEARCH_RERANK_DEPTH": "0"}, "NEWSEARCH_RERANK_DEPTH must be between 1 and"),
    ({"NEWSEARCH_THREADS": "-2"}, "NEWSEARCH_THREADS must be between 0 and 1024"),
    ({"NEWSEARCH_RELOAD_INTERVAL": "-5"}, "NEWSEARCH_RELOAD_INTERVAL must be between 0 and"),
    ({"NEWSEARCH_RELOAD_INTERVAL": "1e-9"}, r"NEWSEARCH_RELOAD_INTERVAL must be 0 \(never reload\) or at least 0.1 seconds, not 1e-09"),
    ({"NEWSEARCH_GC_GRACE_SECONDS": "-1"}, "NEWSEARCH_GC_GRACE_SECONDS must be between 0 and"),
    ({"NEWSEARCH_LEASE_SECONDS": "0.1"}, "NEWSEARCH_LEASE_SECONDS must be between 1 and"),
    ({"NEWSEARCH_TITLE_WEIGHT": "-1"}, "NEWSEARCH_TITLE_WEIGHT must be between 0 and"),
    ({"NEWSEARCH_MAX_K": "1" + "0" * 400}, "NEWSEARCH_MAX_K must be between 1 and 10000"),
    # Values the code cannot compute with: an RRF offset past a float (every hybrid search was a 500), a BM25
    # weight whose scores overflow to null, a connection limit uvicorn fails on with a traceback.
    ({"NEWSEARCH_RRF_K": "1" + "0" * 400}, "NEWSEARCH_RRF_K must be between 1 and 1,000,000"),
    ({"NEWSEARCH_TITLE_WEIGHT": "1e308"}, "NEWSEARCH_TITLE_WEIGHT must be between 0 and 1000"),
    ({"NEWSEARCH_LEAD_WEIGHT": "1e308"}, "NEWSEARCH_LEAD_WEIGHT must be between 0 and 1000"),
    ({"NEWSEARCH_MAX_K": "\u0661\u0660"}, "NEWSEARCH_MAX_K='\u0661\u0660' is not a valid int"),  # Arabic-Indic ten
    ({"NEWSEARCH_DENSE_WEIGHT": "\u0661"}, "is not a valid float"),
])
def test_numbers_out_of_range_name_the_variable_and_the_range(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_numeric_setting_has_a_range_and_the_defaults_are_in_it():
    numeric = {f.name for f in fields(Settings) if get_type_hints(Settings)[f.name] in (int, float)}
    assert numeric == set(RANGES)
    server = {f.name for f in fields(ServerSettings) if get_type_hints(ServerSettings)[f.name] in (int, float)}
    assert server - numeric == set(SERVER_RANGES)
    assert all(math.isfinite(high) for _, high, _ in {**RANGES, **SERVER_RANGES}.values())
    ServerSettings().validate()
    ok = Settings.from_env({"NEWSEARCH_RRF_K": "1", "NEWSEARCH_KEYWORD_WEIGHT": "0", "NEWSEARCH_CANDIDATES": "100",
                            "NEWSEARCH_POOL_TEMPERATURE": "0", "NEWSEARCH_RELOAD_INTERVAL": "0"})
    assert (ok.rrf_k, ok.keyword_weight, ok.candidates) == (1, 0.0, 100)


def settings_page():
    """docs/hooks/settings_page.py, the MkDocs hook that writes the configuration table (not a package)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "settings_page.py"
    spec = importlib.util.spec_from_file_location("settings_page", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_description_and_a_row_in_the_generated_configuration_page():
    page = settings_page()
    described = page.descriptions()
    # The rule for a new setting: a docstring right below its field in indexer/settings.py or search_api/settings.py.
    missing = [f.name for f in fields(ServerSettings) if len(described.get(f.name, "")) < 10]
    assert missing == [], f"settings without a docstring below their field: {missing}"
    rows = {line.split("`")[1]: line for line in page.settings_table().splitlines()[2:]}
    assert list(rows) == [f"NEWSEARCH_{f.name.upper()}" for f in fields(Settings)]
    server_rows = {line.split("`")[1]: line for line in page.settings_table(server=True).splitlines()[2:]}
    indexer_names = {f.name for f in fields(Settings)}
    assert list(server_rows) == [f"NEWSEARCH_{f.name.upper()}" for f in fields(ServerSettings)
                                 if f.name not in indexer_names]
    assert "| integer | `8000` | 1 to 65535 | Port" in server_rows["NEWSEARCH_PORT"]
    assert "| integer | `200` | 16 to 510 | Most word pieces" in rows["NEWSEARCH_CHUNK_TOKENS"]
    assert "Alias: `NEWSEARCH_MODEL_PATH`" in rows["NEWSEARCH_MODEL"]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page.on_page_markdown(doc, None).count("| `NEWSEARCH_") == len(fields(ServerSettings))


def test_keys_and_origins_that_can_work_are_taken():
    s = ServerSettings.from_env({"NEWSEARCH_API_KEYS": "a,b", "NEWSEARCH_ADMIN_KEY": "adm",
                                 "NEWSEARCH_CORS_ORIGINS": "https://news.example:8443, http://localhost:3000,*,"
                                                           "http://[::1]:8000,chrome-extension://abcdef"})
    assert s.api_keys == ("a", "b") and s.admin_key == "adm" and len(s.cors_origins) == 5


def test_variables_no_setting_reads_are_named_with_the_nearest_setting():
    env = {"NEWSEARCH_API_KEY": "k", "NEWSEARCH_URL": "http://127.0.0.1:8000", "NEWSEARCH_MODEL_PATH": "/m",
           "NEWSEARCH_PORT": "8000", "NEWSEARCH_ZZZ": "1", "OTHER": "x"}
    assert unknown_variables(env) == [
        "NEWSEARCH_API_KEY is not a setting and is ignored (did you mean NEWSEARCH_API_KEYS?)",
        "NEWSEARCH_ZZZ is not a setting and is ignored (docs/configuration.md lists them)"]
