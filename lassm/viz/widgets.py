"""Interactive views for JupyterLab (ipywidgets); the static figures they show live beside this module."""

from __future__ import annotations

import numpy as np

from .decoder import class_scores_figure, decoder_stage_figure


def stage_explorer(figure_arrays: dict, class_probs: np.ndarray, class_names, stage: int, query: int,
                   max_points: int = 200_000):
    """A stage slider and a query box over a decoder trace: the stage figure of the chosen (stage,
    query) and that query's class probabilities, redrawn on every change.

    figure_arrays: ``DecoderTrace.figure_arrays()``; class_probs: (stages, Q, C) class probabilities.
    Returns the widget to display (needs a running kernel; the exported HTML views are static).
    """
    import ipywidgets as widgets

    stages, queries = class_probs.shape[:2]
    stage_slider = widgets.IntSlider(value=stage, min=0, max=stages - 1, description="stage")
    query_box = widgets.BoundedIntText(value=query, min=0, max=queries - 1, description="query")

    def render(stage, query):
        decoder_stage_figure(**figure_arrays, stage=stage, query=query, max_points=max_points).show()
        class_scores_figure(class_probs[stage, query], class_names,
                            title=f"query {query}, stage {stage}: class probabilities").show()

    return widgets.VBox([widgets.HBox([stage_slider, query_box]),
                         widgets.interactive_output(render, {"stage": stage_slider, "query": query_box})])
