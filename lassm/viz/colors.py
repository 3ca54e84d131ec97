"""Colours shared by every figure: a stable colour per integer label, fixed accents, a palette for series."""

from __future__ import annotations

import numpy as np

QUERY_COLOR = "rgb(220,40,40)"  # the selected / sampled queries of the decoder figures
FAINT = "rgba(150,150,150,0.25)"  # background points under query overlays
# One colour per series (variant, seed, metric): Plotly's ten defaults, then ten more distinct ones
# (Plotly's Dark24 picks), so studies of up to 20 variants never repeat a colour
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#222A2A", "#FB00D1", "#1CFFCE", "#B68100", "#750D86", "#EB663B",
                 "#511CFB", "#00A08B", "#86CE00", "#6C7C32")


def label_colors(labels: np.ndarray, ignore_color=(190, 190, 190)) -> np.ndarray:
    """A stable distinct RGB colour per integer label; -1 (unlabelled) is grey. (N, 3) uint8."""
    labels = np.asarray(labels, dtype=np.int64)
    # golden-ratio hue steps keep neighbouring ids apart; fixed saturation/value keep them readable
    hue = (labels * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((labels * 7) % 3) / 2
    val = np.full(hue.shape, 0.92)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    sectors = ((val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q))
    rgb = np.choose(i[:, None], [np.stack(c, 1) for c in sectors])
    out = (rgb * 255).astype(np.uint8)
    out[labels < 0] = ignore_color
    return out


def css_colors(rgb: np.ndarray) -> list[str]:
    """(N, 3) uint8 colours as Plotly's ``rgb(r,g,b)`` strings."""
    return [f"rgb({r},{g},{b})" for r, g, b in rgb]


def indexed_colors(rgb: np.ndarray, max_colors: int = 4096) -> dict:
    """(N, 3) uint8 colours as Plotly marker settings: one number per point and a step colour scale of the
    distinct colours. Plotly checks a colour string per point one by one (about 7 s for 250k points),
    numbers all at once. Beyond ``max_colors`` distinct colours (a real scan's RGB) each channel is
    reduced to 16 levels first. Returns {"color", "colorscale", "cmin", "cmax"}: ``color`` (N,) float."""
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    key = (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2]
    values, index = np.unique(key, return_inverse=True)
    if len(values) > max_colors:
        key = key & 0xF0F0F0 | 0x080808  # 4 bits a channel, centred in its step
        values, index = np.unique(key, return_inverse=True)
    palette = css_colors(np.stack([values >> 16, (values >> 8) & 255, values & 255], 1))
    n = len(palette)
    scale = [[t, c] for k, c in enumerate(palette) for t in (k / n, (k + 1) / n)]  # colour k on [k, k+1)
    return {"color": index.reshape(-1).astype(np.float32) + 0.5, "colorscale": scale, "cmin": 0, "cmax": n}


def series_color(i: int) -> str:
    """The i-th series colour, cycling."""
    return SERIES_COLORS[i % len(SERIES_COLORS)]
