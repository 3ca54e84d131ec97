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


# The eight released configs (spec 10.2, 10.4, 12; configs/ of the authors' repository), written out by hand:
# passes = epoch, epochs = eval_epoch (trainer epochs of epoch / eval_epoch passes each), lr, eval_interval,
# initial weights, skipped keys, t_layer, augmentation (elastic p, tilt, feature channels).
HEADS = ("sp_seg_head.2", "out_cls.2")
SPUNET, MASK3D = "weights/scannet-spformer-spunet-v2.pth", "weights/mask3d_scannet200.pth"
LASSM3, LASSM0 = "weights/scannet-lassm-spunet-v2-3.pth", "weights/scannet-lassm-spunet-v2-0.pth"
EVERY8, EVERY2 = ((1, 8), (496, 1)), ((1, 2), (100, 1))
RGBXYZ = "color+coord"
RECIPES = {
    ("scannet", "-3"): (512, 512, 3e-4, EVERY8, SPUNET, ("decoder",), 3, 0.95, 1 / 64, RGBXYZ),
    ("scannet", "-0"): (512, 512, 3e-4, EVERY8, SPUNET, ("decoder",), 0, 0.5, 1 / 64, RGBXYZ),
    ("scannet200", "-3"): (510, 170, 3e-4, EVERY2, MASK3D, (), 3, 0.95, 1 / 24, "color"),
    ("scannet200", "-0"): (510, 170, 3e-4, EVERY2, MASK3D, (), 0, 0.95, 1 / 24, "color"),
    ("scannetpp", "-3"): (512, 512, 3e-4, EVERY8, LASSM3, HEADS, 3, 0.5, 1 / 64, RGBXYZ),
    ("scannetpp", "-0"): (512, 512, 3e-4, EVERY8, LASSM0, HEADS, 0, 0.5, 1 / 64, RGBXYZ),
    ("scannetpp", "-3-sc"): (800, 100, 1e-4, ((1, 1),), "", HEADS, 3, 0.5, 1 / 64, RGBXYZ),
    ("scannetpp", "-0-sc"): (800, 100, 1e-4, ((1, 1),), "", HEADS, 0, 0.5, 1 / 64, RGBXYZ),
}


@pytest.mark.parametrize("name, variant", list(RECIPES))
def test_presets_carry_the_released_training_recipes(name, variant):
    passes, epochs, lr, interval, weights, skip, t_layer, elastic, tilt, feats = RECIPES[(name, variant)]
    cfg = config.preset(name, variant=variant)
    t = cfg.train
    assert (t.epochs, t.epochs * t.loop, t.lr, t.eval_interval) == (epochs, passes, lr, interval)
    assert (t.init_weights, t.skip_keys) == (weights, skip)
    assert (t.batch_size, t.weight_decay, t.poly_power, t.clip_grad, t.amp) == (3, 0.05, 0.9, 10.0, "auto")
    assert t.experiment == f"{name}{variant}" and cfg.release.endswith(f"{variant}")
    assert cfg.model.decoder.t_layer == t_layer
    assert (cfg.augment.elastic_p, cfg.augment.tilt_angle, cfg.augment.feat_keys) == (elastic, tilt, feats)
    assert config.Config.from_dict(cfg.to_dict()).train == t  # what config.json records comes back


def test_reference_behaviour_switches_every_flag():
    cfg = config.reference_behaviour(config.scannet().model)
    assert not cfg.decoder.stable_order and cfg.decoder.centre_range == "superpoints"
    assert cfg.criterion.final_dice_times_batch and cfg.criterion.sp_unlabelled_as_class0
    assert cfg.postprocess.nms_eps == 0.0
    default = config.scannet().model
    assert default.decoder.stable_order and default.decoder.centre_range == "points"
    assert not default.criterion.final_dice_times_batch and default.postprocess.nms_eps > 0


# ------------------------------------------------------------------------------- typed overrides


@pytest.mark.parametrize("override, message", [
    ("train.lr=abc", r"train\.lr: expected a number, got 'abc'"),
    ("train.eval_interval=5", r"train\.eval_interval: expected a tuple\[tuple\[int, int\], \.\.\.\].*got 5"),
    ("train.eval_interval=(1, 8)", r"train\.eval_interval: expected a tuple"),
    ("train.eval_interval=((1, 0),)", r"train\.eval_interval: expected one or more .* pairs"),
    ("train.val_max_scenes=abc", r"train\.val_max_scenes: expected an integer, got 'abc'"),
    ("train.max_steps=-1", r"train\.max_steps: expected 0 .* got -1"),
    ("train.epochs=2.5", r"train\.epochs: expected an integer, got 2\.5"),
    ("train.epochs=True", r"train\.epochs: expected an integer, got True"),
    ("train.resume=1", r"train\.resume: expected True or False, got 1"),
    ("train.resume=yes", r"train\.resume: expected True or False, got 'yes'"),
    ("train.num_workers=-2", r"train\.num_workers: expected 0"),
    ("train.log_every=0", r"train\.log_every: expected a positive integer"),
    ("train.clip_grad=-1", r"train\.clip_grad: expected >= 0"),
    ("train.weight_decay=-0.1", r"train\.weight_decay: expected >= 0"),
    ("train.skip_keys=head", r"train\.skip_keys: expected a tuple\[str, \.\.\.\]"),
    ("train.skip_keys=(1,)", r"train\.skip_keys: expected a tuple\[str, \.\.\.\]"),
    ("augment.grid_size=None", r"augment\.grid_size: expected a value \(not None\)"),
    ("augment.sphere_point_max=2.5", r"augment\.sphere_point_max: expected an integer or None, got 2\.5"),
    ("model.decoder.num_query=0", r"decoder\.num_query: expected a positive integer"),
    ("model.postprocess.nms_kernel=box", r"model\.postprocess\.nms_kernel"),
    ("model.criterion.weight_dice=-1", r"model\.criterion\.weight_dice: expected a weight >= 0"),
    ("data.stuff_classes=(0, 99)", r"data\.stuff_classes: expected labels in"),
    ("seed=-1", r"seed: expected an integer in"),
])
def test_bad_overrides_name_the_key_the_type_and_the_value(override, message):
    cfg = config.preset("synthetic")
    before = cfg.to_dict()
    with pytest.raises(ValueError, match=message):
        config.apply_overrides(cfg, [override])
    assert cfg.to_dict() == before  # a rejected value is never set


def test_good_overrides_are_converted_to_the_declared_type():
    cfg = config.apply_overrides(config.preset("synthetic"), [
        "train.lr=1", "train.epochs=3", "train.eval_interval=((1, 2), (10, 1))", "train.resume=False",
        "train.experiment=2024", "train.skip_keys=('head', 'cls')", "augment.sphere_point_max=None",
        "augment.val_rotate_z=0", "augment.elastic_params=[[1, 2]]", "model.decoder.order=('z',)",
        "train.init_weights=runs/model.pth"])
    t = cfg.train
    assert t.lr == 1.0 and type(t.lr) is float and t.epochs == 3 and t.eval_interval == ((1, 2), (10, 1))
    assert t.resume is False and t.experiment == "2024" and t.skip_keys == ("head", "cls")
    assert t.init_weights == "runs/model.pth" and cfg.model.decoder.order == ("z",)
    assert cfg.augment.sphere_point_max is None and cfg.augment.val_rotate_z == 0.0
    assert cfg.augment.elastic_params == ((1.0, 2.0),) and type(cfg.augment.elastic_params[0][0]) is float
    # a dict (notebooks, ablations) is typed the same way, without parsing text
    config.apply_overrides(cfg, {"train.batch_size": 2, "augment.grid_size": 1})
    assert cfg.train.batch_size == 2 and cfg.augment.grid_size == 1.0
    with pytest.raises(ValueError, match=r"train\.batch_size: expected an integer, got '2'"):
        config.apply_overrides(cfg, {"train.batch_size": "2"})
    with pytest.raises(ValueError, match="unknown field 'lrr'"):
        config.apply_overrides(cfg, ["train.lrr=1"])
    with pytest.raises(ValueError, match="expected key=value"):
        config.apply_overrides(cfg, ["train.lr"])


def test_from_dict_checks_types_like_overrides():
    for name in config.PRESETS:
        d = config.preset(name).to_dict()
        assert config.Config.from_dict(d).to_dict() == d
    d = config.preset("synthetic").to_dict()
    d["train"]["eval_interval"] = [[1, 8], [496, 1]]  # as JSON stores tuples
    assert config.Config.from_dict(d).train.eval_interval == ((1, 8), (496, 1))
    for section, key, value, message in (("train", "epochs", 2.5, "an integer"),
                                         ("train", "lr", "fast", "a number"),
                                         ("train", "eval_interval", 5, "a tuple"),
                                         ("model", "decoder", [], "a mapping")):
        bad = config.preset("synthetic").to_dict()
        bad[section][key] = value
        with pytest.raises(ValueError, match=rf"config\.{section}\.{key}: expected {message}"):
            config.Config.from_dict(bad)
