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


def test_model_presets_follow_the_released_configs():
    for name, classes, topk in (("scannet", 18, 200), ("scannet200", 198, 600), ("scannetpp", 84, 300)):
        for variant, t_layer in (("-3", 3), ("-0", 0)):
            cfg = config.preset(name, variant=variant)
            assert cfg.model.decoder.t_layer == t_layer and cfg.model.num_classes == classes
            assert cfg.model.postprocess.topk_insts == topk and cfg.release.endswith(variant)
            assert len(cfg.data.instance_class_names) == cfg.model.num_classes
            assert cfg.model.stuff_classes == cfg.data.stuff_classes
    sc = config.scannetpp(variant="-0-sc")
    assert sc.model.decoder.t_layer == 0 and sc.release == "scannetpp/insseg-lassm-spunet-v2-0-sc"
    assert config.scannet200().model.backbone.out_channels == 96
    assert config.mosd().model.num_classes == 1 and config.synthetic().model.decoder.num_query == 100
    with pytest.raises(ValueError, match="variant: expected one of"):
        config.scannet(variant="-3-sc")


def test_reference_behaviour_switches_every_flag():
    cfg = config.reference_behaviour(config.scannet().model)
    assert not cfg.decoder.stable_order and cfg.decoder.centre_range == "superpoints"
    assert cfg.criterion.final_dice_times_batch and cfg.criterion.sp_unlabelled_as_class0
    assert cfg.postprocess.nms_eps == 0.0
    default = config.scannet().model
    assert default.decoder.stable_order and default.decoder.centre_range == "points"
    assert not default.criterion.final_dice_times_batch and default.postprocess.nms_eps > 0
