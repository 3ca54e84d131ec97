"""Named presets, one per dataset (STYLE rule 2), and the smoke-run shrink ``tiny``.

Use the presets rather than building a config by hand::

    cfg = lassm.config.synthetic()
    cfg.data.root  # 'data/synthetic'
"""

from __future__ import annotations

from pathlib import Path

from ..data import labels
from .recipes import released_training
from .schema import (
    BackboneConfig,
    Config,
    DataConfig,
    DecoderConfig,
    ModelConfig,
    PostprocessConfig,
    apply_overrides,
    augment_preset,
    single_view_scan,
)

VARIANTS = ("-3", "-0")  # released decoders: 3 cross-attention layers + 3 local-aggregation layers, or 6
SCRATCH_VARIANTS = ("-3-sc", "-0-sc")  # ScanNet++ only: the same decoders trained from scratch


def _decoder(variant: str, **overrides) -> DecoderConfig:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return DecoderConfig(t_layer=int(variant[1:]), **overrides)


def _model(data: DataConfig, backbone: BackboneConfig, decoder: DecoderConfig, topk: int) -> ModelConfig:
    """Class count and stuff classes follow the data, so the heads always match the label space."""
    return ModelConfig(backbone=backbone, decoder=decoder, postprocess=PostprocessConfig(topk_insts=topk),
                       num_classes=len(data.instance_class_names), stuff_classes=data.stuff_classes)


def synthetic(root: str = "data/synthetic", variant: str = "-3") -> Config:
    """Built-in procedural rooms in ScanNet's format, ScanNet v2's 20 classes.

    A small model for a laptop CPU: the golden data's 16-channel SpUNet and a 128-wide decoder with
    100 queries (rooms have a few hundred superpoints, so most queries are all superpoints).
    """
    data = DataConfig(name="synthetic", raw_root="data/synthetic_raw", root=root)
    backbone = BackboneConfig(base_channels=16, planes=(16, 32, 48, 64, 80))
    return Config(data, _model(data, backbone, _decoder(variant, d_model=128, ffn_hidden=512, num_query=100),
                               topk=100), augment=augment_preset("synthetic", variant))


def demo(root: str = "data/demo", variant: str = "-3") -> Config:
    """The CPU quick start (``make demo``): small generated rooms, every instance class merged into one.

    The synthetic rooms' 16-channel SpUNet with a 64-wide decoder (100 queries) on "small" synthetic
    rooms (vertices 8-12 cm apart), voxelised at 8 cm to match (at 2 cm every point would sit alone
    in its neighbourhood and the first convolutions would see nothing), with ScanNet's 18 instance
    classes merged into "object" (``data.class_map``): it learns in minutes on a laptop CPU to find
    the objects of rooms it has not seen, not what they are. Training: batch 2, lr 3e-3, 25 epochs,
    validation every 5. The 18-class task needs the ``synthetic`` preset on full-density rooms and far
    more training.
    """
    cfg = synthetic(root=root, variant=variant)
    data = cfg.data
    data.raw_root, data.class_names = "data/demo_raw", ("wall", "floor", "object")
    data.class_map = (0, 1) + (2,) * (len(labels.CLASS_LABELS_20) - 2)
    decoder = cfg.model.decoder
    decoder.d_model, decoder.ffn_hidden, decoder.heads = 64, 256, 4
    cfg.model = _model(data, cfg.model.backbone, decoder, topk=cfg.model.postprocess.topk_insts)
    cfg.augment.grid_size = 0.08
    # two cores: scenes load in the training process (tiny files), both cores compute
    cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.num_workers = 2, 3e-3, 25, 0
    cfg.train.eval_interval, cfg.train.experiment = ((1, 5),), "demo"
    return cfg


def scannet(root: str = "data/scannet", variant: str = "-3") -> Config:
    """ScanNet v2, released configs insseg-lassm-spunet-v2-3 / -0 (spec 10.2): model, augmentation and
    training recipe (:mod:`lassm.config.recipes`: 512 epochs, lr 3e-4, the backbone of an SPFormer-style
    ScanNet model as initial weights)."""
    data = DataConfig(name="scannet", raw_root="data/scannet_raw", root=root)
    return Config(data, _model(data, BackboneConfig(), _decoder(variant), topk=200),
                  train=released_training("scannet", variant),
                  release=f"scannet/insseg-lassm-spunet-v2{variant}",
                  augment=augment_preset("scannet", variant))


def scannet200(root: str = "data/scannet", variant: str = "-3") -> Config:
    """ScanNet200 with Mask3D's Res16UNet34C on colour only (spec 4.2, 10.2), released configs
    insseg-lassm-minkunet-3 / -0: training starts from Mask3D's MinkowskiEngine backbone
    (``weights/mask3d_scannet200.pth``, converted when loaded), 170 epochs of 3 passes, lr 3e-4."""
    # Same processed folder as ScanNet v2; wall (0) and floor (2) are stuff. The reference swaps raw
    # chair (1) and floor (2) at load time and then drops the prefix (0, 1) (REFERENCE_SPEC 2.2-2.3);
    # mapping the non-stuff classes to 0..C-1 in order gives the same train labels without the swap.
    data = DataConfig(name="scannet200", raw_root="data/scannet_raw", root=root, segment_key="segment200",
                      class_names=labels.CLASS_LABELS_200, stuff_classes=(0, 2))
    return Config(data, _model(data, BackboneConfig(name="res16unet34c", in_channels=3), _decoder(variant),
                               topk=600), train=released_training("scannet200", variant),
                  release=f"scannet200/insseg-lassm-minkunet{variant}",
                  augment=augment_preset("scannet200", variant))


def scannetpp(root: str = "data/scannetpp", variant: str = "-3") -> Config:
    """ScanNet++ v2: variants -3 / -0 fine-tune the ScanNet model, -3-sc / -0-sc train from scratch.

    The -sc configs have the same model; the released -sc runs differ in training only, and ``train``
    carries each variant's recipe (:mod:`lassm.config.recipes`, spec 10.2): -3 / -0 start from the ScanNet
    LaSSM of the same decoder (``weights/scannet-lassm-spunet-v2-3.pth`` / ``-0.pth``) without its two
    class-count layers (``sp_seg_head.2``, ``out_cls.2``), 512 epochs at lr 3e-4; -sc start from random
    weights, 100 epochs of 8 passes (800 passes) at lr 1e-4, validating after every epoch.
    """
    stuff = tuple(i for i in range(len(labels.CLASS_LABELS_PP)) if i not in labels.INSTANCE_CLASS_IDS_PP)
    data = DataConfig(name="scannetpp", raw_root="data/scannetpp_raw", root=root,
                      train_split="train_grid1mm_chunk6x6_stride3x3", segment_key="segment",
                      class_names=labels.CLASS_LABELS_PP, stuff_classes=stuff)
    decoder = _decoder(variant.removesuffix("-sc") if variant in SCRATCH_VARIANTS else variant)
    return Config(data, _model(data, BackboneConfig(), decoder, topk=300),
                  train=released_training("scannetpp", variant),
                  release=f"scannetpp/insseg-lassm-spunet-v2{variant}",
                  augment=augment_preset("scannetpp", variant))


def mosd(root: str = "data/mosd", raw_root: str = "../shared/data/mosd", view: str = "object",
         variant: str = "-3") -> Config:
    """mOSD tabletop scans: the table is stuff; instances are whole objects or object parts.

    view: "object" (the original OSD objects) or "part" (mOSD's disjoint parts); both are
    stored in every processed scene, as ``instance_object`` and ``instance_part``.
    A small model like synthetic(): tabletop scenes hold a few to a few dozen objects.
    """
    if view not in ("object", "part"):
        raise ValueError(f"view: expected 'object' or 'part', got {view!r}")
    data = DataConfig(name="mosd", raw_root=raw_root, root=root, segment_key="segment",
                      class_names=labels.CLASS_LABELS_MOSD, stuff_classes=(0,),
                      instance_key=f"instance_{view}", scan=single_view_scan())
    backbone = BackboneConfig(base_channels=16, planes=(16, 32, 48, 64, 80))
    return Config(data, _model(data, backbone, _decoder(variant, d_model=128, ffn_hidden=512, num_query=100),
                               topk=50), augment=augment_preset("mosd", variant))


def tabletop(root: str = "data/tabletop", raw_root: str = "data/tabletop_raw", real_root: str = "data/mosd",
             variant: str = "-3") -> Config:
    """Single-view tabletop scans for scenes never seen (sim-to-real): synthetic Kinect-like frames.

    The mosd model and label space (table = stuff, whole objects = instances), trained on synthetic frames
    in mOSD's own format from ``lassm.data.tabletop`` (``python -m lassm.data.prepare tabletop RAW OUT``;
    measured with 2,500 ordinary and 1,000 dense frames) and selected on the real mOSD learn-split
    validation scans (``<real_root>/val``). The training augmentation adds 2 mm sensor jitter to the mosd
    one. Training: batch 6, lr 2e-3 (the mosd rate), 30 epochs of 100 steps (thousands of frames would
    make one pass per validation far too long), validation after each. The objects are the Euclidean
    clusters above the table, divided where the model's masks divide them (``model.postprocess``:
    ``split_radius`` 1.5 cm, ``split_mode`` "partition", :mod:`lassm.model.geometric_split`; not in the
    reference), the clusters first divided along concave creases, where objects touch
    (``split_convex_degrees`` 45), and along flush or shallow joints between superpoints of different
    colour (``split_colour_cut`` 0.12). Measured on our own data (README, "Real single-view scans"),
    synthetic frames alone did better than with the real learn scans mixed in or fine-tuned on
    afterwards, on the real validation scans and on synthetic clutter; to mix them in anyway set
    ``data.extra_train=('<real_root>/train',)`` and ``data.extra_train_loop=4``. The synthetic clutter
    validation splits are ``val_clutter`` (objects mostly apart) and ``val_touch`` (objects pushed until
    their surfaces touch) under ``root``.
    """
    cfg = mosd(root=root, raw_root=raw_root, variant=variant)
    cfg.data.val_root = real_root
    cfg.augment.jitter_sigma = 0.002
    cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.steps_per_epoch = 6, 2e-3, 30, 100
    cfg.model.postprocess.split_radius, cfg.model.postprocess.split_mode = 0.015, "partition"
    cfg.model.postprocess.split_convex_degrees, cfg.model.postprocess.split_colour_cut = 45.0, 0.12
    cfg.train.eval_interval, cfg.train.experiment = ((1, 1),), "tabletop"
    return cfg


PRESETS = {f.__name__: f for f in (demo, synthetic, scannet, scannet200, scannetpp, mosd, tabletop)}


def tiny(cfg: Config) -> Config:
    """Shrink a config's model to seconds-long smoke runs (CI, ``smoke = True`` notebooks): a 64-wide
    decoder with 16 queries on the pure-PyTorch sparse backend. Returns the same (modified) config."""
    return apply_overrides(cfg, {"model.backbone.sparse_backend": "torch", "model.decoder.d_model": 64,
                                 "model.decoder.ffn_hidden": 128, "model.decoder.heads": 4,
                                 "model.decoder.num_query": 16})


# Smoke runs: a tiny model (tiny) and two steps on one scene at a time
# (no initial weights: a tiny model cannot take the released ones)
SMOKE_TRAIN = {"train.epochs": 1, "train.max_steps": 2, "train.batch_size": 1, "train.num_workers": 0,
               "train.val_max_scenes": 1, "train.resume": False, "train.init_weights": ""}


def run_config(preset_name: str, run_dir: str | Path, variant: str = "-3", seed: int = 0,
               data_root: str = "", epochs: int = 40, batch_size: int = 2, lr: float = 1e-3,
               eval_every: int = 10, amp: str = "auto", resume: bool = True, smoke: bool = False,
               settings: dict | None = None, overrides: dict | None = None,
               root: str | Path | None = None) -> Config:
    """The Config of one training run into ``run_dir``, from the parameters of ``03_train.ipynb`` (which
    the ablation runner shares): the preset, the data root (relative to the project ``root``; empty
    for the preset's default; smoke: ``outputs/smoke/synthetic_train`` and a :func:`tiny` model
    trained for two steps), the training settings, ``settings``, then ``overrides`` last."""
    root = Path(root or project_root())
    cfg = preset(preset_name, variant=variant)
    cfg.seed = seed
    cfg.data.root = str(root / (data_root or cfg.data.root))
    cfg.train.output_root, cfg.train.experiment = str(Path(run_dir).parent), Path(run_dir).name
    fields = {"train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr, "train.amp": amp,
              "train.resume": resume, "train.eval_interval": ((1, eval_every),)}
    if smoke:
        cfg.data.root = str(root / "outputs/smoke/synthetic_train")
        tiny(cfg)
        fields.update(SMOKE_TRAIN)
    fields.update(settings or {})
    fields.update(overrides or {})  # last: the caller's fields win
    return apply_overrides(cfg, fields)


def preset(name: str, **kwargs) -> Config:
    """A named preset; keyword arguments go to its function (e.g. ``variant="-0"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset: unknown name {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name](**kwargs)


def project_root(start: str | Path | None = None) -> Path:
    """The checkout's top folder (holding ``notebooks/`` and ``lassm/``), else the start folder.

    Notebooks resolve ``data/`` and ``outputs/`` against it, so they behave the same whether
    JupyterLab, papermill or nbval starts them from the top folder or from ``notebooks/``.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "lassm" / "__init__.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    return start
