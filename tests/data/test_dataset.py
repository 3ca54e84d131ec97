"""The scene dataset and batch packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lassm.data.batch import pack_scenes
from lassm.data.dataset import SceneDataset
from lassm.data.io import DataError, write_scene


def make_scene(folder, n, seed, segment_key="segment20", multi=False):
    rng = np.random.default_rng(seed)
    arrays = {"coord": rng.random((n, 3)).astype(np.float64),
              "color": rng.integers(0, 255, (n, 3)).astype(np.uint8),
              "superpoint": rng.integers(0, 5, n).astype(np.int32),
              segment_key: rng.integers(-1, 20, (n, 3) if multi else n).astype(np.int16),
              "instance": rng.integers(-1, 4, (n, 3) if multi else n).astype(np.int32)}
    write_scene(folder, arrays)
    return arrays


def test_dataset_loads_typed_tensors_and_loops(tmp_path):
    a = make_scene(tmp_path / "train" / "b_scene", 30, 0)
    make_scene(tmp_path / "train" / "a_scene", 20, 1)
    ds = SceneDataset(tmp_path, "train", loop=3)
    assert len(ds) == 6 and ds.name(0) == "a_scene" and ds.name(1) == "b_scene"
    s = ds[5]  # 5 % 2 scenes = b_scene
    assert s["name"] == "b_scene" and s["coord"].dtype == torch.float32 and s["color"].dtype == torch.float32
    assert s["segment"].dtype == s["instance"].dtype == s["superpoint"].dtype == torch.int64
    assert np.array_equal(s["segment"].numpy(), a["segment20"])
    assert np.allclose(s["color"].numpy(), a["color"])


def test_missing_labels_read_as_minus_one_and_multilabel_keeps_column_0(tmp_path):
    arrays = make_scene(tmp_path / "val" / "s", 10, 0, segment_key="segment", multi=True)
    ds = SceneDataset(tmp_path, "val", segment_key="segment", instance_key="instance_object")
    s = ds[0]
    assert np.array_equal(s["segment"].numpy(), arrays["segment"][:, 0])
    assert (s["instance"] == -1).all()


def test_class_map_relabels_segment_as_the_config_says(tmp_path):
    """data.class_map: label k -> class_map[k]; -1 and labels beyond the map -> -1; instances untouched."""
    from lassm.config import DataConfig, demo

    arrays = make_scene(tmp_path / "train" / "s", 200, 3)
    data = DataConfig(class_names=("wall", "floor", "object"), class_map=(0, 1) + (2,) * 10 + (-1,) * 3)
    s = SceneDataset.for_config(data, tmp_path, "train")[0]
    raw = arrays["segment20"].astype(np.int64)
    expected = np.where(raw < 0, -1, np.where(raw < 12, np.minimum(raw, 2), -1))  # 12-14 -> -1, 15-19 beyond
    assert np.array_equal(s["segment"].numpy(), expected)
    assert {-1, 0, 1, 2} == set(np.unique(expected).tolist())  # every branch of the rule is exercised
    assert np.array_equal(s["instance"].numpy(), arrays["instance"])
    plain = SceneDataset.for_config(DataConfig(), tmp_path, "train")[0]  # no map: labels as stored
    assert np.array_equal(plain["segment"].numpy(), raw)
    # the demo preset keeps wall and floor and merges the 18 instance classes into "object"
    cfg = demo()
    names = cfg.data.class_names
    assert [names[c] for c in cfg.data.class_map[:2]] == ["wall", "floor"]
    assert {names[c] for c in cfg.data.class_map[2:]} == {"object"} and cfg.model.num_classes == 1
    with pytest.raises(ValueError, match="data.class_map"):
        DataConfig(class_names=("wall", "floor", "object"), class_map=(0, 1, 3))


def test_empty_or_missing_roots_raise(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        SceneDataset(tmp_path, "train")
    (tmp_path / "train" / "unfinished").mkdir(parents=True)
    with pytest.raises(DataError, match="no processed scenes"):
        SceneDataset(tmp_path, "train")


def test_pack_scenes_offsets_and_keys():
    scenes = []
    for n_vx, n_pt in ((4, 6), (3, 5)):
        scenes.append({"coord": torch.rand(n_vx, 3), "grid_coord": torch.zeros(n_vx, 3, dtype=torch.long),
                       "feat": torch.rand(n_vx, 6), "inverse": torch.randint(0, n_vx, (n_pt,)),
                       "superpoint": torch.arange(n_pt), "origin_coord": torch.rand(n_pt, 3),
                       "origin_segment": torch.zeros(n_pt, dtype=torch.long),
                       "origin_instance": torch.zeros(n_pt, dtype=torch.long), "name": "x"})
    batch = pack_scenes(scenes)
    assert batch["offset"].tolist() == [4, 7] and batch["origin_offset"].tolist() == [6, 11]
    assert batch["feat"].shape == (7, 6) and batch["inverse"].shape == (11,) and "name" not in batch
    assert torch.equal(batch["inverse"][6:], scenes[1]["inverse"])  # stays local to its scene
    del scenes[1]["feat"]
    with pytest.raises(ValueError, match="key 'feat' is in some scenes"):
        pack_scenes(scenes)
    with pytest.raises(ValueError, match="at least one scene"):
        pack_scenes([])
