from __future__ import annotations

import pytest

from lassm import config
from lassm.data import labels


def test_presets_are_consistent():
    for name in ("synthetic", "scannet", "scannet200", "scannetpp", "mosd"):
        cfg = config.preset(name)
        assert cfg.data.name == name
        names = cfg.data.instance_class_names
        assert len(names) == len(cfg.data.class_names) - len(cfg.data.stuff_classes)
    assert len(config.scannet().data.instance_class_names) == 18
    assert len(config.scannet200().data.instance_class_names) == 198
    pp = config.scannetpp().data.instance_class_names
    assert pp == tuple(labels.CLASS_LABELS_PP[i] for i in labels.INSTANCE_CLASS_IDS_PP)
    assert config.mosd().data.instance_class_names == ("object",)
    assert config.mosd(view="part").data.instance_key == "instance_part"
    with pytest.raises(ValueError, match="view: expected 'object' or 'part'"):
        config.mosd(view="parts")


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset: unknown name 'scannet3'"):
        config.preset("scannet3")


def test_project_root(tmp_path):
    (tmp_path / "lassm").mkdir()
    (tmp_path / "lassm" / "__init__.py").write_text("")
    (tmp_path / "notebooks").mkdir()
    assert config.project_root(tmp_path / "notebooks") == tmp_path
    assert config.project_root(tmp_path / "lassm") == tmp_path


def test_backbone_presets():
    assert config.scannet().model.backbone.name == "spunet"
    assert config.scannet().model.backbone.in_channels == 6
    s200 = config.scannet200().model.backbone
    assert (s200.name, s200.in_channels, s200.out_channels) == ("res16unet34c", 3, 96)
    assert config.synthetic().model.backbone.sparse_backend == "auto"
