"""Notebooks executed headless (as papermill and nbconvert run them) keep their figures in exported HTML,
and 05's widget cell does not wait for a front end that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lassm.progress import jupyter_frontend
from lassm.viz import NOTEBOOK_RENDERER, widgets_available

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
nbconvert = pytest.importorskip("nbconvert")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook in smoke mode in a fresh kernel, headless: no Jupyter server, so no JPY_SESSION_NAME."""
    monkeypatch.setenv("LASSM_SMOKE", "1")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _outputs(nb) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def test_executed_notebook_html_export_keeps_its_figures(monkeypatch, tmp_path):
    nb = _execute("01_preprocess.ipynb", monkeypatch)
    figures = [o for o in _outputs(nb) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "the notebook showed no Plotly figure"
    assert all("text/html" in o["data"] for o in figures)  # JupyterLab's renderer and an HTML copy
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    (tmp_path / "01.html").write_text(body)
    assert body.count('class="plotly-graph-div"') == len(figures)
    assert len(re.findall(r"Plotly\.newPlot\(", body)) >= len(figures)
    assert "plotly.js v" in body  # plotly.js itself is embedded, so the page works offline
    # the figure's data travels in the page: the scene's points as a scatter3d trace
    assert '"type":"scatter3d"' in body.replace(" ", "")


def test_explore_notebook_skips_its_widgets_headless(monkeypatch):
    nb = _execute("05_explore_queries.ipynb", monkeypatch)
    text = "".join(o.get("text", "") for o in _outputs(nb) if o.get("output_type") == "stream")
    assert "stage slider skipped: no Jupyter front end" in text
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in _outputs(nb))


def test_widgets_only_under_a_jupyter_frontend(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not jupyter_frontend() and not widgets_available("auto")
    assert widgets_available(True) and not widgets_available(False)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/notebooks/05_explore_queries.ipynb")
    assert jupyter_frontend() and widgets_available("auto") and not widgets_available(False)
    with pytest.raises(ValueError, match="widgets"):
        widgets_available("yes")


def test_every_notebook_that_shows_figures_sets_the_export_renderer():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        if ".show()" in source:
            assert "notebook_figures()" in source, path.name
    assert set(NOTEBOOK_RENDERER.split("+")) == {"plotly_mimetype", "notebook"}  # interactive + offline HTML
