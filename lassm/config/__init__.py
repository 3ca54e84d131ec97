"""Configuration: typed dataclasses (:mod:`.schema`) and named presets (:mod:`.presets`).

    cfg = lassm.config.preset("mosd", variant="-3")
    lassm.config.apply_overrides(cfg, ["train.epochs=10"])
"""

from .presets import (
    PRESETS,
    SCRATCH_VARIANTS,
    VARIANTS,
    mosd,
    preset,
    project_root,
    scannet,
    scannet200,
    scannetpp,
    synthetic,
    tiny,
)
from .schema import (
    PRESETS_DATA,
    AugmentConfig,
    BackboneConfig,
    Config,
    CriterionConfig,
    DataConfig,
    DecoderConfig,
    ModelConfig,
    PostprocessConfig,
    ScanConfig,
    TrainConfig,
    apply_overrides,
    augment_preset,
    reference_behaviour,
)

__all__ = ["PRESETS", "PRESETS_DATA", "SCRATCH_VARIANTS", "VARIANTS", "AugmentConfig", "BackboneConfig",
           "Config", "CriterionConfig", "DataConfig", "DecoderConfig", "ModelConfig", "PostprocessConfig",
           "ScanConfig", "TrainConfig", "apply_overrides", "augment_preset", "mosd", "preset", "project_root",
           "reference_behaviour", "scannet", "scannet200", "scannetpp", "synthetic", "tiny"]
