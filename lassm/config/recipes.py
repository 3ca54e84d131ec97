"""The authors' training recipes of the eight released configs (REFERENCE_SPEC 10.2, 10.4 and 12; the
files under ``configs/`` of github.com/RayYoh/LaSSM), as :class:`TrainConfig` values the presets carry.

======================  =============  ====  ====================  ==========================================
config                  epochs x loop  lr    validation            initial weights (keys not loaded)
======================  =============  ====  ====================  ==========================================
scannet -3, -0          512 x 1        3e-4  every 8, from 496: 1  SPFormer-style SpUNet (``decoder``)
scannet200 -3, -0       170 x 3        3e-4  every 2, from 100: 1  Mask3D's Res16UNet34C (none)
scannetpp -3, -0        512 x 1        3e-4  every 8, from 496: 1  ScanNet LaSSM of the variant (class heads)
scannetpp -3-sc, -0-sc  100 x 8        1e-4  every epoch           none: from scratch
======================  =============  ====  ====================  ==========================================

"epochs x loop" is the reference's ``eval_epoch`` trainer epochs of ``epoch / eval_epoch`` passes over the
data each (510 and 800 passes for ScanNet200 and -sc); validation and checkpoints come at the end of
such an epoch. All eight: AdamW (weight decay 0.05), poly decay per step (power 0.9) over the whole run,
AMP, clipping at norm 10, and a global batch of 12 scenes: 3 per process on the reference's 4 GPUs
(``train.batch_size`` is per process; on fewer GPUs the global batch, and so the schedule, is smaller).
The augmentation of each config is :func:`lassm.config.augment_preset` of its dataset and variant.

Initial weights. The reference names files inside its own experiment folders and, when the file is
absent, silently trains from random initialisation (spec 10.2). Here a recipe names a file under
``weights/`` (relative to the working folder; ``--set train.init_weights=PATH`` points elsewhere,
``train.init_weights=""`` trains from random initialisation). Building a config never opens the file, so
presets, tests and smoke runs work without it; a run that starts (not one that resumes) without it stops
before its first step with :func:`weights_hint`, which says where that file comes from. A silent fall
back would train a different model than the recipe says.
"""

from __future__ import annotations

from .schema import TrainConfig

SCANNET_BACKBONE = "weights/scannet-spformer-spunet-v2.pth"
MASK3D_BACKBONE = "weights/mask3d_scannet200.pth"
SCANNET_LASSM = {"-3": "weights/scannet-lassm-spunet-v2-3.pth", "-0": "weights/scannet-lassm-spunet-v2-0.pth"}
CLASS_HEADS = ("sp_seg_head.2", "out_cls.2")  # the only layers whose shape depends on the class count

WEIGHTS = {  # where each recipe's initial weights come from
    SCANNET_BACKBONE: "not released: the authors' SPFormer-style ScanNet model (their SGIFormer code base, "
                      "600 epochs), of which only the SpUNet backbone is used; train without it "
                      "(train.init_weights=\"\", expect a gap, spec 10.2) or put a pre-trained SpUNet there",
    MASK3D_BACKBONE: "Mask3D's ScanNet200 Res16UNet34C backbone, MinkowskiEngine keys (converted when "
                     "loaded): https://github.com/oneformer3d/oneformer3d/releases/download/v1.0/"
                     "mask3d_scannet200.pth or https://huggingface.co/RayYoh/SGIFormer/blob/main/"
                     "mask3d_scannet200.pth",
    SCANNET_LASSM["-3"]: "the authors' ScanNet LaSSM -3: https://huggingface.co/RayYoh/LaSSM/blob/main/"
                         "scannet-lassm-spunet-v2-3/model/model_best.pth, or your own "
                         "outputs/scannet-3/model_best.pth (python -m lassm.train --preset scannet)",
    SCANNET_LASSM["-0"]: "a ScanNet LaSSM -0 (the authors released none): copy your own "
                         "outputs/scannet-0/model_best.pth there (python -m lassm.train --preset scannet "
                         "--variant=-0)",
}


def weights_hint(path: str) -> str:
    """Where a recipe's initial-weights file comes from; empty for a path no recipe names."""
    return WEIGHTS.get(str(path), "")


def released_training(dataset: str, variant: str) -> TrainConfig:
    """The training recipe of the authors' ``<dataset>/insseg-lassm-*<variant>`` config (module table);
    the run folder is ``outputs/<dataset><variant>``."""
    scratch = variant.endswith("-sc")
    decoder = variant.removesuffix("-sc")
    if decoder not in SCANNET_LASSM or (scratch and dataset != "scannetpp"):
        raise ValueError(f"variant: expected -3 or -0 (ScanNet++ also -3-sc, -0-sc), got {variant!r}")
    common = {"experiment": f"{dataset}{variant}", "batch_size": 3, "weight_decay": 0.05, "poly_power": 0.9,
              "clip_grad": 10.0}
    if dataset == "scannet":
        return TrainConfig(epochs=512, loop=1, lr=3e-4, eval_interval=((1, 8), (496, 1)),
                           init_weights=SCANNET_BACKBONE, skip_keys=("decoder",), **common)
    if dataset == "scannet200":
        return TrainConfig(epochs=170, loop=3, lr=3e-4, eval_interval=((1, 2), (100, 1)),
                           init_weights=MASK3D_BACKBONE, skip_keys=(), **common)
    if dataset == "scannetpp" and scratch:
        return TrainConfig(epochs=100, loop=8, lr=1e-4, eval_interval=((1, 1),), init_weights="",
                           skip_keys=CLASS_HEADS, **common)
    if dataset == "scannetpp":
        return TrainConfig(epochs=512, loop=1, lr=3e-4, eval_interval=((1, 8), (496, 1)),
                           init_weights=SCANNET_LASSM[decoder], skip_keys=CLASS_HEADS, **common)
    raise ValueError(f"dataset: no released recipe for {dataset!r}; expected scannet, scannet200 or "
                     f"scannetpp")
