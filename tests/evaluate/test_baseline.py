"""The geometric baseline: points above the support plane, Euclidean clusters, one mask per cluster
(the clusters are also what the geometric split of masks cuts along)."""

from __future__ import annotations

import numpy as np
import pytest

from lassm.data.io import write_scene
from lassm.evaluate.baseline import baseline_prediction, baseline_split, main
from lassm.model.geometric_split import euclidean_clusters


def grid_box(x0: float, y0: float, size: float, height: float, step: float = 0.005) -> np.ndarray:
    """Points on the top and the four sides of an upright box (metres), about ``step`` apart."""
    ticks = np.arange(0, size + 1e-9, step)
    zs = np.arange(2 * step, height + 1e-9, step)  # above the 5 mm table cut
    top = np.array([(x, y, height) for x in ticks for y in ticks])
    sides = [np.array([(t, e, z) for t in ticks for z in zs]) for e in (0.0, size)]
    sides += [np.array([(e, t, z) for t in ticks for z in zs]) for e in (0.0, size)]
    return np.concatenate([top, *sides]) + [x0, y0, 0.0]


def table(half: float = 0.3, step: float = 0.01) -> np.ndarray:
    ticks = np.arange(-half, half, step)
    return np.array([(x, y, 0.0) for x in ticks for y in ticks])


def scene(gap: float) -> tuple[np.ndarray, np.ndarray]:
    """A table and two 6 cm boxes ``gap`` metres apart; (coord, instance) with the table -1, boxes 0 and 1."""
    a, b = grid_box(-0.1, 0.0, 0.06, 0.08), grid_box(-0.04 + gap, 0.0, 0.06, 0.05)
    coord = np.concatenate([table(), a, b])
    instance = np.r_[np.full(len(coord) - len(a) - len(b), -1), np.zeros(len(a), int), np.ones(len(b), int)]
    return coord, instance


def test_objects_apart_are_two_clusters_and_the_table_is_none():
    coord, instance = scene(gap=0.05)
    cluster = euclidean_clusters(coord, radius=0.015, height=0.005, min_points=10)
    assert (cluster[instance == -1] == -1).all()
    assert len(np.unique(cluster[instance >= 0])) == 2
    for g in (0, 1):  # each box is exactly one cluster
        assert len(np.unique(cluster[instance == g])) == 1
    assert cluster[instance == 0][0] == 0  # the taller box has more points: largest first


def test_objects_closer_than_the_radius_merge():
    coord, instance = scene(gap=0.01)
    cluster = euclidean_clusters(coord, radius=0.015, height=0.005, min_points=10)
    assert np.unique(cluster[instance >= 0]).tolist() == [0]
    apart = euclidean_clusters(coord, radius=0.008, height=0.005, min_points=10)
    assert len(np.unique(apart[instance >= 0])) == 2


def test_small_clusters_and_low_points_are_dropped():
    coord, instance = scene(gap=0.05)
    speck = np.array([[0.2, 0.2, 0.03], [0.2, 0.205, 0.03]])  # two points: below min_points
    low = np.array([[0.25, -0.2, 0.003]])  # under the table cut
    cluster = euclidean_clusters(np.concatenate([coord, speck, low]), radius=0.015, height=0.005,
                                 min_points=10)
    assert (cluster[-3:] == -1).all() and cluster.max() == 1


@pytest.mark.parametrize("kwargs, message", [({"radius": 0.0}, "radius"), ({"height": -1.0}, "height"),
                                             ({"min_points": 0}, "min_points")])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        euclidean_clusters(np.zeros((3, 3)), **{"radius": 0.01, **kwargs})
    with pytest.raises(ValueError, match="coord"):
        euclidean_clusters(np.zeros((3, 2)), 0.01)


def write_tabletop_scene(root, name: str, gap: float) -> None:
    coord, instance = scene(gap)
    segment = np.where(instance >= 0, 1, 0)  # mOSD classes: 0 table (stuff), 1 object
    arrays = {"coord": coord.astype(np.float32), "color": np.full((len(coord), 3), 128, np.uint8),
              "segment": segment, "instance_object": instance, "superpoint": np.arange(len(coord))}
    write_scene(root / "val" / name, arrays)


def test_split_scores_apart_objects_one_and_touching_ones_lower(tmp_path):
    write_tabletop_scene(tmp_path, "apart", gap=0.05)
    apart = baseline_split(str(tmp_path), "val", radius=0.015, height=0.005, min_points=10)
    assert apart["AP"] == apart["AP50"] == 1.0
    write_tabletop_scene(tmp_path, "touching", gap=0.01)
    both = baseline_split(str(tmp_path), "val", radius=0.015, height=0.005, min_points=10)
    assert both["AP50"] < 1.0  # the merged pair of the second scene matches neither box at IoU 0.5


def test_command_line_prints_the_table(tmp_path, capsys):
    write_tabletop_scene(tmp_path, "apart", gap=0.05)
    assert main(["--root", str(tmp_path), "--split", "val", "--min-points", "10"]) == 0
    out = capsys.readouterr().out
    assert "geometric baseline" in out and "object" in out and "1.000" in out


def test_convex_division_separates_two_touching_spheres_the_clusters_merge():
    caps, normals, superpoints = [], [], []
    ticks = np.arange(-0.03, 0.03 + 1e-9, 0.003)
    for i, centre in enumerate((0.0, 0.06)):  # radius 3 cm, touching at x = 0.03
        x, y = np.meshgrid(ticks, ticks)
        inside = x**2 + y**2 < 0.03**2
        x, y = x[inside], y[inside]
        n = np.stack([x, y, np.sqrt(0.03**2 - x**2 - y**2)], 1) / 0.03
        caps.append(n * 0.03 + [centre, 0.0, 0.03])
        normals.append(n)
        sector = ((np.arctan2(y, x) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
        superpoints.append(i * 16 + 8 * (n[:, 2] < 0.5) + sector)
    coord, normal, superpoint = np.concatenate(caps), np.concatenate(normals), np.concatenate(superpoints)
    merged = baseline_prediction(coord, 1, min_points=10)
    divided = baseline_prediction(coord, 1, min_points=10, convex_degrees=45.0, normal=normal,
                                  superpoint=superpoint)
    assert len(merged.scores) == 1 and len(divided.scores) == 2
    left = coord[:, 0] < 0.03
    assert sorted(divided.masks.sum(1).tolist()) == sorted([int(left.sum()), int((~left).sum())])
    with pytest.raises(ValueError, match="normals"):
        baseline_prediction(coord, 1, convex_degrees=45.0)
