"""The typed configuration (STYLE rule 2): one nested dataclass per component, a short comment per field.

A checkpoint stores the whole :class:`Config` (``to_dict``); ``from_dict`` and ``apply_overrides``
(:mod:`lassm.config.typed`) rebuild and change it, every value checked against its declared type and
the section's ``__post_init__`` ranges. The named presets are in :mod:`lassm.config.presets`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..data import labels
from .training import TrainConfig as TrainConfig  # re-exported: its own module, for length
from .typed import apply_overrides as apply_overrides  # re-exported: lassm.config.apply_overrides
from .typed import build, check_positive


@dataclass
class ScanConfig:
    """How a raw scan becomes a processed scene. Stored with the config in every checkpoint, so
    ``lassm.predict`` repeats on a raw scan exactly what preprocessing did for training."""

    # "dataset": coordinates as the dataset stores them (ScanNet-style meshes are gravity-aligned);
    # "support_plane": a single-view RGB-D scan in the camera frame is re-expressed z-up in the frame
    # of its fitted support plane (table or floor), table at z = 0 (lassm.data.singleview)
    frame: str = "dataset"
    k_thresh: float = 0.01  # Segmentator threshold of the superpoints (mesh, pixel-grid mesh or kNN graph)
    seg_min_verts: int = 20  # smallest superpoint, in vertices / points
    knn: int = 8  # neighbours of each point in the kNN-graph superpoints of clouds without a mesh
    # support_plane: the plane's normal must lie within this many degrees of the camera's up (-y); 60 covers
    # a camera held level and looking down at a table (mOSD: 34-44); raise it for views from straight above
    max_tilt_degrees: float = 60.0
    # support_plane, lassm.predict only: a scan with no such plane (a view from more steeply above than any
    # training frame) is fitted again up to this tilt, with a warning, rather than left without an answer;
    # 0 = no second try. Datasets (prepare) do not retry: a frame without a plane is reported and left out
    fallback_tilt_degrees: float = 85.0
    warn_extent: float = 100.0  # metres: a scan of your own wider than this warns (millimetres?)

    def __post_init__(self):
        if self.frame not in ("dataset", "support_plane"):
            raise ValueError(f"data.scan.frame: expected 'dataset' or 'support_plane', got {self.frame!r}")
        if not self.warn_extent > 0:
            raise ValueError(f"data.scan.warn_extent: expected metres > 0, got {self.warn_extent}")
        if not 0 < self.max_tilt_degrees <= 90:
            raise ValueError(f"data.scan.max_tilt_degrees: expected degrees in (0, 90], "
                             f"got {self.max_tilt_degrees}")
        if not 0 <= self.fallback_tilt_degrees <= 90:
            raise ValueError(f"data.scan.fallback_tilt_degrees: expected degrees in [0, 90] (0 = no second "
                             f"try), got {self.fallback_tilt_degrees}")
        if self.k_thresh < 0:
            raise ValueError(f"data.scan.k_thresh: expected >= 0, got {self.k_thresh}")
        check_positive(self, "data.scan", ("seg_min_verts", "knn"))


def single_view_scan() -> ScanConfig:
    """Preprocessing of single-view RGB-D tabletop scans (mOSD, synthetic tabletop frames): the support
    plane's frame, ScanNet's Segmentator thresholds on the pixel-grid mesh (or kNN graph).

    Coarser superpoints (at least 100 points: 380-640 per frame instead of ~2,400, every one a query)
    were tried and trained much worse (README, "Real single-view scans").
    """
    return ScanConfig(frame="support_plane")


@dataclass
class DataConfig:
    name: str = "synthetic"  # dataset preset name (synthetic, scannet, scannet200, scannetpp, mosd)
    raw_root: str = "data/synthetic_raw"  # raw scans (synthetic: where rooms are generated)
    root: str = "data/synthetic"  # processed scenes: <root>/<split>/<scene>/<key>.npy
    train_split: str = "train"  # folder under root used for training
    val_split: str = "val"  # folder under root used for validation and model selection
    segment_key: str = "segment20"  # which semantic array to load as `segment`
    class_names: tuple[str, ...] = labels.CLASS_LABELS_20  # semantic classes, index = label
    stuff_classes: tuple[int, ...] = (0, 1)  # semantic labels that are not instances (wall, floor)
    instance_key: str = "instance"  # which instance array to load as `instance`
    # coarser label spaces without new preprocessing: label k of the `segment_key` array becomes
    # class_map[k] (an index into class_names; -1 = ignored, as are labels beyond the map); () = as stored
    class_map: tuple[int, ...] = ()
    # more training scene folders ("<root>/<split>" paths) joined to the training split, e.g. the real
    # mOSD learn scans beside synthetic tabletop frames (sim + real training)
    extra_train: tuple[str, ...] = ()
    extra_train_loop: int = 1  # each extra folder's scenes appear this many times per epoch (oversampling)
    val_root: str = ""  # where the validation split lives; "" = root
    scan: ScanConfig = field(default_factory=ScanConfig)  # raw scan -> processed scene (predict repeats it)

    def __post_init__(self):
        if not self.class_names:
            raise ValueError("data.class_names: expected one or more class names, got ()")
        if any(not 0 <= c < len(self.class_names) for c in self.stuff_classes):
            raise ValueError(f"data.stuff_classes: expected labels in 0..{len(self.class_names) - 1} "
                             f"(indices of data.class_names), got {self.stuff_classes}")
        check_positive(self, "data", ("extra_train_loop",))
        if any(not -1 <= c < len(self.class_names) for c in self.class_map):
            raise ValueError(f"data.class_map: expected entries in -1..{len(self.class_names) - 1} "
                             f"(indices of data.class_names, -1 = ignore), got {self.class_map}")

    @property
    def instance_class_names(self) -> tuple[str, ...]:
        return tuple(n for i, n in enumerate(self.class_names) if i not in self.stuff_classes)


@dataclass
class AugmentConfig:
    """Which transforms run and with what parameters (REFERENCE_SPEC 3.3); the presets fill it."""

    pipeline: str = "scannet"  # preset pipeline of 3.3: "scannet", "scannet200" or "scannetpp"
    elastic_p: float = 0.95  # training elastic probability ("-3" 0.95, "-0" and ScanNet++ 0.5)
    elastic_params: tuple[tuple[float, float], ...] = ((10.0, 60.0), (30.0, 180.0))  # (gran., magnitude)
    tilt_angle: float = 1 / 64  # x/y rotation range [-a, a] x pi (ScanNet 1/64, ScanNet200 1/24)
    sphere_point_max: int | None = 250000  # sphere crop budget in points (None: use sphere_sample_rate)
    sphere_sample_rate: float | None = None  # sphere crop budget as a fraction of N (ScanNet++ 0.8)
    grid_size: float = 0.02  # voxel size in metres
    color_norm: str = "scannet"  # "scannet": x/127.5 - 1; "mask3d": (x/255 - mean)/std
    feat_keys: str = "color+coord"  # "color+coord" (6 channels) or "color" (3 channels)
    val_rotate_z: float | None = None  # fixed validation rotation about z in units of pi (ScanNet "-3": 0.35)
    # not in the reference: per-point Gaussian noise in metres after scaling (training only; ScanNet
    # pipeline). 0 = off (every released preset); the single-view tabletop preset uses it as sensor noise.
    jitter_sigma: float = 0.0
    # not in the reference: one colour gain per scene, U(lo, hi), multiplying RGB (clamped to 0-255) before
    # the chromatic transforms (training only). None = off (every preset). For synthetic frames darker than
    # the real sensor's; measured at (1.0, 2.2) on the tabletop preset, two seeds: no consistent gain (README,
    # "Real single-view scans")
    colour_gain: tuple[float, float] | None = None

    def __post_init__(self):
        choices = {"pipeline": ("scannet", "scannet200", "scannetpp"), "color_norm": ("scannet", "mask3d"),
                   "feat_keys": ("color+coord", "color")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"augment.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if not 0 <= self.elastic_p <= 1:
            raise ValueError(f"augment.elastic_p: expected a probability in [0, 1], got {self.elastic_p}")
        if self.grid_size <= 0:
            raise ValueError(f"augment.grid_size: expected > 0, got {self.grid_size}")
        if not 0 <= self.jitter_sigma < 0.1:
            raise ValueError(f"augment.jitter_sigma: expected metres in [0, 0.1), got {self.jitter_sigma}")
        if self.colour_gain is not None and not (len(self.colour_gain) == 2
                                                  and 0 < self.colour_gain[0] <= self.colour_gain[1]):
            raise ValueError(f"augment.colour_gain: expected None or (lo, hi) with 0 < lo <= hi, "
                             f"got {self.colour_gain}")
        if any(g <= 0 or m < 0 for g, m in self.elastic_params):
            raise ValueError(f"augment.elastic_params: expected (granularity > 0, magnitude >= 0) pairs, "
                             f"got {self.elastic_params}")
        if self.tilt_angle < 0:
            raise ValueError(f"augment.tilt_angle: expected >= 0, got {self.tilt_angle}")
        if self.sphere_point_max is not None and self.sphere_point_max < 1:
            raise ValueError(f"augment.sphere_point_max: expected a positive integer or None, "
                             f"got {self.sphere_point_max}")
        if self.sphere_sample_rate is not None and not 0 < self.sphere_sample_rate <= 1:
            raise ValueError(f"augment.sphere_sample_rate: expected a fraction in (0, 1] or None, "
                             f"got {self.sphere_sample_rate}")


def augment_preset(dataset: str, variant: str = "-3") -> AugmentConfig:
    """The released augmentation of a dataset and decoder variant (spec 3.3); synthetic rooms and
    mOSD use the ScanNet pipeline. A decoder without cross-attention layers ("-0") trains with the
    "-0" settings."""
    if dataset not in PRESETS_DATA:
        raise ValueError(f"dataset: expected one of {PRESETS_DATA}, got {dataset!r}")
    variants = ("-3", "-0", "-3-sc", "-0-sc") if dataset == "scannetpp" else ("-3", "-0")
    if variant not in variants:
        raise ValueError(f"variant: expected one of {variants} for {dataset}, got {variant!r}")
    if dataset == "scannet200":
        return AugmentConfig(pipeline="scannet200", elastic_p=0.95, elastic_params=((0.2, 0.4), (0.8, 1.6)),
                             tilt_angle=1 / 24, color_norm="mask3d", feat_keys="color")
    if dataset == "scannetpp":
        return AugmentConfig(pipeline="scannetpp", elastic_p=0.5, sphere_point_max=None,
                             sphere_sample_rate=0.8)
    return AugmentConfig(elastic_p=0.95 if variant == "-3" else 0.5,
                         val_rotate_z=0.35 if variant == "-3" else None)


PRESETS_DATA = ("scannet", "scannet200", "scannetpp", "synthetic", "mosd")


@dataclass
class BackboneConfig:
    name: str = "spunet"  # "spunet" (SpUNet-v2m1) or "res16unet34c" (Mask3D's MinkUNet, ScanNet200)
    in_channels: int = 6  # voxel feature channels: 6 = [rgb in [-1,1], xyz], 3 = colour only
    base_channels: int = 32  # SpUNet: width of the input conv and of the output features
    planes: tuple[int, ...] = (32, 64, 96, 128, 160)  # SpUNet: width of each U-Net level
    bn_momentum: float = 0.02  # Res16UNet34C: momentum of its stem/transition/downsample norms
    conv1_kernel_size: int = 5  # Res16UNet34C: kernel of the first convolution
    sparse_backend: str = "auto"  # "auto" (spconv on a GPU when installed), "torch" or "spconv"

    def __post_init__(self):
        choices = {"name": ("spunet", "res16unet34c"), "sparse_backend": ("auto", "torch", "spconv")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.backbone.{name}: expected one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        check_positive(self, "model.backbone", ("in_channels", "base_channels", "conv1_kernel_size"))
        if not self.planes or min(self.planes) < 1:
            raise ValueError(f"model.backbone.planes: expected one or more positive widths, "
                             f"got {self.planes}")
        if not 0 < self.bn_momentum <= 1:
            raise ValueError(f"model.backbone.bn_momentum: expected a value in (0, 1], "
                             f"got {self.bn_momentum}")

    @property
    def out_channels(self) -> int:
        return self.base_channels if self.name == "spunet" else 96


@dataclass
class DecoderConfig:
    """LaSSM's query decoder (REFERENCE_SPEC 6). Defaults are the released ScanNet "-3" decoder."""

    d_model: int = 256  # query width D
    num_layers: int = 6  # decoder layers; with the initial head, num_layers + 1 prediction stages
    t_layer: int = 3  # the first t_layer layers use masked cross-attention ("-3"); 0 = none ("-0")
    num_query: int = 400  # queries after FPS (a scene with floor(alpha S) <= num_query uses all S)
    alpha: float = 0.8  # fraction of superpoints, most confident first, that FPS samples from
    k: int = 8  # neighbours of each query in local aggregation
    order: tuple[str, ...] = ("hilbert", "hilbert-trans")  # serialization paths of the SSM block
    ssm_layers: int = 1  # Mamba2 mixers per SSM block (the reference's num_blocks entry)
    ffn_hidden: int = 1024  # FFN hidden width
    heads: int = 8  # cross-attention heads
    d_state: int = 64  # Mamba2 state size N
    head_dim: int = 64  # Mamba2 head dim P (heads = 2 d_model / head_dim)
    attn_mask: bool = True  # cross-attention only to superpoints the previous head predicts
    serialization_grid: float = 1.0  # metres per serialization cell; 1.0 = the reference (spec 11.1.1)
    # spec 11.1.1: the reference sorts curve codes with torch's default argsort, whose order of tied
    # codes is implementation-defined (differs CPU vs GPU); we sort stably. False = reference.
    stable_order: bool = True
    # spec 11.1.9: the reference normalises predicted centres by the superpoint-centroid range (+1e-6)
    # but ground truth by the point range. "points" normalises both by the point range (default);
    # "superpoints" reproduces the reference.
    centre_range: str = "points"
    use_kernels: bool = True  # Triton SSD scan and FPS, causal-conv1d, when importable on a GPU
    # On a GPU the layer stack runs as CUDA graphs per padded shape (lassm.model.graphs): inference replays
    # one graph, training a forward and a backward graph; the same arithmetic without thousands of kernel
    # launches from Python. False runs it op by op.
    cuda_graphs: bool = True
    # training: how many padded shapes stay captured (each keeps its activations on the GPU; least recently
    # used shapes are dropped); 0 trains op by op (inference graphs unaffected)
    train_graphs: int = 8
    # Ablation axes (06_ablations); the defaults are LaSSM as published.
    # query_init: "semantic_fps" (spec 6.2: FPS over the floor(alpha S) most confident superpoints),
    # "fps" (FPS over all superpoints, no semantic filter), "semantic_topk" (the num_query most confident).
    query_init: str = "semantic_fps"
    # mixer between the layer's attention/aggregation and its FFN: "ssm" (Mamba2 along the `order`
    # curves; one entry = single path), "attention" (self-attention among the queries), "none"
    mixer: str = "ssm"
    # centre_refine: queries move by each head's predicted centre offset (spec 6.3); False keeps them at
    # their seed superpoints (the heads still predict, and are trained on, seed + offset)
    centre_refine: bool = True
    # use_score: a mask-quality head (the reference's optional ``out_score``, off in every released config;
    # spec 6, 7.5): per stage, each query's predicted IoU with its object, trained on matched queries
    # (``criterion.weight_score``) and multiplying the class probabilities at inference (spec 5.3 step 1)
    use_score: bool = False

    def __post_init__(self):
        if not 0 <= self.t_layer <= self.num_layers:
            raise ValueError(f"decoder.t_layer: expected 0..{self.num_layers}, got {self.t_layer}")
        if self.centre_range not in ("points", "superpoints"):
            raise ValueError(f"decoder.centre_range: expected 'points' or 'superpoints', "
                             f"got {self.centre_range!r}")
        choices = {"query_init": ("semantic_fps", "fps", "semantic_topk"),
                   "mixer": ("ssm", "attention", "none")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"decoder.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        curves = ("hilbert", "hilbert-trans", "z", "z-trans")
        if not self.order or any(o not in curves for o in self.order):
            raise ValueError(f"decoder.order: expected one or more of {curves}, got {self.order!r}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"decoder.alpha: expected a fraction in (0, 1], got {self.alpha}")
        check_positive(self, "decoder", ("num_query", "k", "d_model", "num_layers", "heads", "ssm_layers",
                                    "ffn_hidden", "d_state", "head_dim"))
        if self.train_graphs < 0:
            raise ValueError(f"decoder.train_graphs: expected a count of shapes >= 0, "
                             f"got {self.train_graphs}")
        if self.serialization_grid <= 0:
            raise ValueError(f"decoder.serialization_grid: expected metres > 0, "
                             f"got {self.serialization_grid}")
        if (2 * self.d_model) % self.head_dim or self.d_model % self.heads:
            raise ValueError(f"decoder.d_model: {self.d_model} must be divisible by heads ({self.heads}) "
                             f"and 2 d_model by head_dim ({self.head_dim})")


@dataclass
class CriterionConfig:
    """Matching costs and loss weights (REFERENCE_SPEC 7); defaults are every released config's."""

    cost_class: float = 0.5  # matcher: -softmax probability of the GT class
    cost_bce: float = 1.0  # matcher: mean mask BCE
    cost_dice: float = 1.0  # matcher: mask Dice
    cost_bbox: float = 1.0  # matcher: L1 between normalised centres
    weight_class: float = 0.5  # loss weights: classification CE
    weight_bce: float = 1.0  # mask BCE
    weight_dice: float = 1.0  # mask Dice
    weight_bbox: float = 1.0  # centre L1
    weight_sp: float = 0.2  # superpoint semantic CE
    no_object_weight: float = 0.1  # CE weight of the background class
    iter_matcher: bool = True  # re-match every auxiliary stage with its own predictions
    fix_mean_loss: bool = True  # BCE/Dice averaged over scenes with ground truth
    # spec 11.1.2: the reference forgets to divide the FINAL stage's Dice by the per-GPU batch size B,
    # weighting it B times (x3 in the released runs). True reproduces that; default: mean, like aux.
    final_dice_times_batch: bool = False
    # spec 11.1.3: a superpoint without a >50% label is trained as class 0 by the reference (argmax of
    # an all-False column). True reproduces that; default: such superpoints are ignored.
    sp_unlabelled_as_class0: bool = False
    # the score head's loss (``decoder.use_score`` only): MSE between each matched query's predicted score
    # and its binarised mask's IoU with the object, 0.5 as the reference hard-codes it (spec 7), over the
    # matches whose IoU exceeds score_min_iou (the reference: 0.5; 0 trains on every match that overlaps
    # its object, bad ones too)
    weight_score: float = 0.5
    score_min_iou: float = 0.5

    def __post_init__(self):
        if not 0 <= self.score_min_iou < 1:
            raise ValueError(f"model.criterion.score_min_iou: expected an IoU in [0, 1), "
                             f"got {self.score_min_iou}")
        for name in (f.name for f in fields(self) if f.type == "float"):  # every cost and weight
            if getattr(self, name) < 0:
                raise ValueError(f"model.criterion.{name}: expected a weight >= 0, got {getattr(self, name)}")


@dataclass
class PostprocessConfig:
    """Turning the last stage into scored point masks (REFERENCE_SPEC 5.3, 8)."""

    topk_insts: int = 200  # (query, class) pairs kept before NMS (clipped to Q x C)
    score_thr: float = 0.0  # keep instances with score strictly above
    npoint_thr: int = 100  # keep instances with strictly more points
    sp_score_thr: float = 0.4  # a point is in a mask when its superpoint's probability exceeds this
    nms: bool = True  # matrix NMS (linear kernel) on the soft superpoint masks
    nms_kernel: str = "linear"  # "linear" or "gaussian"
    nms_sigma: float = 2.0  # gaussian kernel only
    # spec 11.2.6: matrix NMS divides by (1 - compensation), zero for two identical masks; we clamp it
    # at this epsilon. 0.0 reproduces the reference's division.
    nms_eps: float = 1e-6
    # not in the reference: on single-view scans (data.scan.frame "support_plane") cut every kept mask
    # along the Euclidean clusters of the points above the table, points closer than this many metres
    # linked (lassm.model.geometric_split); 0 = off, the reference's behaviour (the tabletop preset: 0.015)
    split_radius: float = 0.0
    # "cut": each mask cut into its parts in the clusters; "partition": the clusters are the objects except
    # where the model's masks divide one into sizeable parts (lassm.model.geometric_split)
    split_mode: str = "cut"
    # "partition" only: divide the clusters along concave creases between superpoints first (objects that
    # touch; lassm.model.geometric_split.convex_segments), joints within this many degrees counting as
    # smooth; 0 = off (not in the reference)
    split_convex_degrees: float = 0.0
    # with split_convex_degrees: a smooth joint that is not convex also needs the two superpoints' mean
    # colours within this distance (RGB scaled to 0-1) to hold (convex_segments); 0 = off (not in the
    # reference)
    split_colour_cut: float = 0.0

    def __post_init__(self):
        check_positive(self, "model.postprocess", ("topk_insts",))
        if self.split_colour_cut < 0 or (self.split_colour_cut > 0 and self.split_convex_degrees <= 0):
            raise ValueError(f"model.postprocess.split_colour_cut: expected 0 (off) or a colour distance > 0 "
                             f"with split_convex_degrees > 0 (it refines the convex division), got "
                             f"{self.split_colour_cut} with split_convex_degrees {self.split_convex_degrees}")
        if self.split_mode not in ("cut", "partition"):
            raise ValueError(f"model.postprocess.split_mode: expected 'cut' or 'partition', "
                             f"got {self.split_mode!r}")
        if not 0 <= self.split_convex_degrees < 180:
            raise ValueError(f"model.postprocess.split_convex_degrees: expected degrees in [0, 180), "
                             f"0 = off, got {self.split_convex_degrees}")
        if self.split_convex_degrees > 0 and self.split_mode != "partition":
            raise ValueError(f"model.postprocess.split_convex_degrees: the convex division is part of "
                             f"split_mode 'partition', got split_mode {self.split_mode!r}; set it to 0")
        if not 0 <= self.split_radius < 1:
            raise ValueError(f"model.postprocess.split_radius: expected metres in [0, 1), 0 = off, "
                             f"got {self.split_radius}")
        if self.nms_kernel not in ("linear", "gaussian"):
            raise ValueError(f"model.postprocess.nms_kernel: expected 'linear' or 'gaussian', "
                             f"got {self.nms_kernel!r}")
        # score_thr below 0 keeps every instance, zero scores too (scores lie in [0, 1])
        for name, low, high in (("score_thr", -math.inf, 1), ("sp_score_thr", 0, 1), ("nms_eps", 0, 1)):
            if not low <= getattr(self, name) < high:
                raise ValueError(f"model.postprocess.{name}: expected a value in [{low}, {high}), "
                                 f"got {getattr(self, name)}")
        # npoint_thr: any integer (below 0 keeps empty masks too, as score_thr below 0 keeps zero scores)
        if self.nms_sigma <= 0:
            raise ValueError(f"model.postprocess.nms_sigma: expected > 0, got {self.nms_sigma}")


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    criterion: CriterionConfig = field(default_factory=CriterionConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    num_classes: int = 18  # instance classes C (the heads predict C + 1 with background last)
    stuff_classes: tuple[int, ...] = (0, 1)  # semantic labels that are background, not instances

    def __post_init__(self):
        check_positive(self, "model", ("num_classes",))
        if any(c < 0 for c in self.stuff_classes):
            raise ValueError(f"model.stuff_classes: expected labels >= 0, got {self.stuff_classes}")


def reference_behaviour(cfg: ModelConfig) -> ModelConfig:
    """Switch every "bug we do not copy" flag to the reference's behaviour (docs/reference_decisions.md).

    Used to compare against the authors' outputs; returns the same (modified) config.
    """
    cfg.decoder.stable_order = False
    cfg.decoder.centre_range = "superpoints"
    cfg.criterion.final_dice_times_batch = True
    cfg.criterion.sp_unlabelled_as_class0 = True
    cfg.postprocess.nms_eps = 0.0
    return cfg


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0  # one seed for the whole run, recorded with its outputs
    release: str = ""  # the authors' config a preset reproduces, e.g. "scannet/insseg-lassm-spunet-v2-3"
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training / validation transforms

    def __post_init__(self):
        if not 0 <= self.seed < 2**32:  # numpy's generators take seeds in [0, 2**32)
            raise ValueError(f"seed: expected an integer in [0, 2**32), got {self.seed}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """Rebuild a Config written by :meth:`to_dict` (e.g. a run's config.json); unknown keys and values
        of the wrong type raise ValueError naming the field.

        Configs written before augmentation was part of the config get the augmentation their
        dataset and decoder implied then (``augment_preset``).
        """
        cfg = build(cls, d, "config")
        if isinstance(d, dict) and "augment" not in d:
            variant = "-0" if cfg.model.decoder.t_layer == 0 else "-3"
            cfg.augment = augment_preset(cfg.data.name, variant)
        if isinstance(d, dict) and "scan" not in d.get("data", {}) and cfg.data.name == "mosd":
            cfg.data.scan.frame = "support_plane"  # mOSD scenes were always put in the table frame
        return cfg
