"""Typed configuration with named presets, one per dataset (STYLE rule 2).

Later components (augmentation, model, training) add their own nested dataclasses here; a
checkpoint stores the whole :class:`Config`. Use the presets rather than building by hand::

    cfg = lassm.config.synthetic()
    cfg.data.root  # 'data/synthetic'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data import labels


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

    @property
    def instance_class_names(self) -> tuple[str, ...]:
        return tuple(n for i, n in enumerate(self.class_names) if i not in self.stuff_classes)


@dataclass
class BackboneConfig:
    name: str = "spunet"  # "spunet" (SpUNet-v2m1) or "res16unet34c" (Mask3D's MinkUNet, ScanNet200)
    in_channels: int = 6  # voxel feature channels: 6 = [rgb in [-1,1], xyz], 3 = colour only
    base_channels: int = 32  # SpUNet: width of the input conv and of the output features
    planes: tuple[int, ...] = (32, 64, 96, 128, 160)  # SpUNet: width of each U-Net level
    bn_momentum: float = 0.02  # Res16UNet34C: momentum of its stem/transition/downsample norms
    conv1_kernel_size: int = 5  # Res16UNet34C: kernel of the first convolution
    sparse_backend: str = "auto"  # "auto" (spconv on a GPU when installed), "torch" or "spconv"

    @property
    def out_channels(self) -> int:
        return self.base_channels if self.name == "spunet" else 96


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0  # one seed for the whole run, recorded with its outputs

    def to_dict(self) -> dict:
        return asdict(self)


def synthetic(root: str = "data/synthetic") -> Config:
    """Built-in procedural rooms in ScanNet's format, ScanNet v2's 20 classes."""
    return Config(DataConfig(name="synthetic", raw_root="data/synthetic_raw", root=root))


def scannet(root: str = "data/scannet") -> Config:
    return Config(DataConfig(name="scannet", raw_root="data/scannet_raw", root=root))


def scannet200(root: str = "data/scannet") -> Config:
    # Same processed folder as ScanNet v2; wall (0) and floor (2) are stuff. The reference
    # swaps raw chair (1) and floor (2) at load time (REFERENCE_SPEC 2.2); the loader does that.
    # Mask3D's Res16UNet34C on colour only (spec 4.2)
    return Config(DataConfig(name="scannet200", raw_root="data/scannet_raw", root=root,
                             segment_key="segment200", class_names=labels.CLASS_LABELS_200,
                             stuff_classes=(0, 2)),
                  ModelConfig(BackboneConfig(name="res16unet34c", in_channels=3)))


def scannetpp(root: str = "data/scannetpp") -> Config:
    stuff = tuple(i for i in range(len(labels.CLASS_LABELS_PP)) if i not in labels.INSTANCE_CLASS_IDS_PP)
    return Config(DataConfig(name="scannetpp", raw_root="data/scannetpp_raw", root=root,
                             train_split="train_grid1mm_chunk6x6_stride3x3", segment_key="segment",
                             class_names=labels.CLASS_LABELS_PP, stuff_classes=stuff))


def mosd(root: str = "data/mosd", raw_root: str = "../shared/data/mosd", view: str = "object") -> Config:
    """mOSD tabletop scans: the table is stuff; instances are whole objects or object parts.

    view: "object" (the original OSD objects) or "part" (mOSD's disjoint parts); both are
    stored in every processed scene, as ``instance_object`` and ``instance_part``.
    """
    if view not in ("object", "part"):
        raise ValueError(f"view: expected 'object' or 'part', got {view!r}")
    return Config(DataConfig(name="mosd", raw_root=raw_root, root=root, segment_key="segment",
                             class_names=labels.CLASS_LABELS_MOSD, stuff_classes=(0,),
                             instance_key=f"instance_{view}"))


PRESETS = {f.__name__: f for f in (synthetic, scannet, scannet200, scannetpp, mosd)}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ValueError(f"preset: unknown name {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()


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
