"""Progress bars that survive headless runs.

In JupyterLab (a kernel a Jupyter server started) bars are ipywidgets (``tqdm.auto``); everywhere else
(terminals, papermill, nbclient, nbconvert) they are text, so an executed or exported notebook keeps
them instead of an empty widget placeholder.
"""

from __future__ import annotations

import os

from tqdm import tqdm as text_tqdm


def jupyter_frontend() -> bool:
    """True when a Jupyter server started this kernel, so a browser front end can show widgets.

    jupyter_server puts ``JPY_SESSION_NAME`` in the environment of the kernels it starts; papermill,
    nbclient and ``nbconvert --execute`` start kernels without a front end and without it.
    """
    return bool(os.environ.get("JPY_SESSION_NAME"))


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm`` under a Jupyter front end, the text ``tqdm`` otherwise; same arguments."""
    if jupyter_frontend():
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(*args, **kwargs)
    return text_tqdm(*args, **kwargs)
