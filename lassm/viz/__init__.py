"""Plotly figures from plain arrays and records (no model or training imports), by concept:

- :mod:`.colors` label colours, accents and series palette
- :mod:`.scenes` scenes by RGB / label layers, predicted instances against the ground truth
- :mod:`.decoder` query initialisation, decoder stages (and a slider over them), class scores
- :mod:`.training` a run's loss and validation curves; :mod:`.evaluation` per-class AP
- :mod:`.ablations` an ablation study's table, charts and report
- :mod:`.html` standalone HTML files and pages; :mod:`.notebook` figures that survive export, widgets
  only under a front end

Every public name is importable from ``lassm.viz`` directly.
"""

from .ablations import (
    ap_figure,
    curves_figure,
    format_table,
    report_html,
    study_caveats,
    table_figure,
    tradeoff_figure,
)
from .colors import FAINT, QUERY_COLOR, SERIES_COLORS, css_colors, indexed_colors, label_colors, series_color
from .decoder import class_scores_figure, decoder_slider_figure, decoder_stage_figure, query_init_figure
from .evaluation import per_class_figure
from .html import export_report, export_view, save_html, table_html, write_page
from .notebook import NOTEBOOK_RENDERER, notebook_figures, widgets_available
from .points import HIDDEN_AXES, scene_layout, subsample, xyz
from .scenes import (
    instance_comparison_figure,
    instance_match_table,
    match_instances,
    prediction_vs_gt_figure,
    scene_figure,
    scene_view_figure,
)
from .training import training_curves
from .widgets import stage_explorer

__all__ = ["FAINT", "HIDDEN_AXES", "NOTEBOOK_RENDERER", "QUERY_COLOR", "SERIES_COLORS", "ap_figure",
           "class_scores_figure", "css_colors", "indexed_colors", "curves_figure", "decoder_slider_figure",
           "decoder_stage_figure", "export_report", "export_view", "format_table",
           "instance_comparison_figure", "instance_match_table", "label_colors", "match_instances",
           "notebook_figures", "per_class_figure", "prediction_vs_gt_figure", "query_init_figure",
           "report_html", "save_html", "scene_figure", "scene_layout", "scene_view_figure", "series_color",
           "stage_explorer", "study_caveats", "subsample", "table_figure", "table_html", "tradeoff_figure",
           "training_curves", "widgets_available", "write_page", "xyz"]
