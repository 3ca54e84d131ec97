"""Configuration: typed dataclasses (:mod:`.schema`) and named presets (:mod:`.presets`).

    cfg = lassm.config.preset("mosd", variant="-3")
    lassm.config.apply_overrides(cfg, ["train.epochs=10"])
"""

from .presets import (
    PRESETS,
    SCRATCH_VARIANTS,
    SMOKE_TRAIN,
    VARIANTS,
    demo,
    mosd,
    preset,
    project_root,
    run_config,
    scannet,
    scannet200,
    scannetpp,
    synthetic,
    tabletop,
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
    single_view_scan,
)

__all__ = ["PRESETS", "PRESETS_DATA", "SCRATCH_VARIANTS", "SMOKE_TRAIN", "VARIANTS", "AugmentConfig",
           "BackboneConfig", "Config", "CriterionConfig", "DataConfig", "DecoderConfig", "ModelConfig",
           "PostprocessConfig", "ScanConfig", "TrainConfig", "apply_overrides", "augment_preset", "demo",
           "mosd", "preset", "project_root", "reference_behaviour", "run_config", "scannet", "scannet200",
           "scannetpp", "single_view_scan", "synthetic", "tabletop", "tiny"]
