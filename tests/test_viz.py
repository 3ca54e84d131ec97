from __future__ import annotations

import numpy as np

from lassm.viz import label_colors, scene_figure


def test_label_colors():
    c = label_colors(np.array([-1, 0, 1, 2, 0]))
    assert c.shape == (5, 3) and c.dtype == np.uint8
    assert (c[0] == 190).all()  # unlabelled grey
    assert (c[1] == c[4]).all() and not (c[1] == c[2]).all()


def test_scene_figure_subsamples_and_has_dropdown():
    rng = np.random.default_rng(0)
    n = 5000
    fig = scene_figure(rng.random((n, 3)), rng.integers(0, 255, (n, 3)),
                       {"semantic": rng.integers(-1, 3, n), "instance": rng.integers(-1, 9, n)},
                       class_names=("a", "b", "c"), max_points=1000)
    assert len(fig.data[0].x) == 1000
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["RGB", "semantic", "instance"]
    assert any(t.startswith("semantic: ") for t in fig.data[0].text[:20])
