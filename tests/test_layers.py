"""The import layers of pyproject.toml's [tool.importlinter] hold: search_api -> indexer, and indexer's batch side
cli -> jobs -> engines -> steps -> building blocks, with no import going back up (even inside a function)."""

from __future__ import annotations

from importlinter.cli import lint_imports

from tests.helpers import ROOT


def test_imports_follow_the_layers(capsys):
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0 and " KEPT" in report, report
