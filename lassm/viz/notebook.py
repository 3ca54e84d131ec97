"""How figures and widgets behave inside a notebook: figures that survive export, widgets only where a
front end can run them."""

from __future__ import annotations

from ..progress import jupyter_frontend

# Plotly's own output (JupyterLab's interactive renderer) plus an HTML copy with plotly.js embedded once
# per notebook: `jupyter nbconvert --to html`, papermill copies and export_report show the figures offline.
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def notebook_figures() -> None:
    """Make ``fig.show()`` write figures that survive export (:data:`NOTEBOOK_RENDERER`). Call it once at
    the top of a notebook; the first figure shown then carries plotly.js (about 4.5 MB) for the rest."""
    import plotly.io as pio

    pio.renderers["notebook"].auto_play = False  # animated figures (the decoder stages) wait for Play
    pio.renderers.default = NOTEBOOK_RENDERER


def widgets_available(setting: bool | str = "auto") -> bool:
    """Whether a notebook should show ipywidgets: ``setting`` True / False, or "auto": only under a
    Jupyter front end (JupyterLab). Headless runs (papermill, nbconvert) have no front end to answer a
    widget, and a widget cell there can wait for it until the run times out."""
    if setting == "auto":
        return jupyter_frontend()
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"widgets: expected True, False or 'auto', got {setting!r}")
