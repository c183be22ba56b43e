"""notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel against a live `news-search serve`."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT, serve_process

NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
EXECUTED = ROOT / "var" / "notebooks" / "quickstart.executed.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_against_a_live_server(corpus_index, monkeypatch):
    with serve_process(corpus_index) as url:
        # The kernel inherits these; the notebook's first cell reads them.
        monkeypatch.setenv("NEWSEARCH_URL", url)
        monkeypatch.setenv("NEWSEARCH_INDEX_DIR", str(corpus_index))
        nb = nbformat.read(NOTEBOOK, as_version=4)
        # Any cell that raises fails here with CellExecutionError naming the cell and the traceback.
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for cell in outputs.values() for o in cell)
    html = "\n".join(o.get("data", {}).get("text/html", "") for cell in outputs.values() for o in cell)
    assert "Magnitogorsk apartment building collapses" in text
    assert "<mark>" in html and "<table" in html  # the results table and the DataFrame rendered
    assert "k: k must be between 1 and 100" in text or "k must be between" in text
    assert "no article with id 'no-such-article'" in text
    EXECUTED.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED)  # with outputs, for a developer to open; var/ is never committed
