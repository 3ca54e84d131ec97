"""LaSSM's network: backbones, query decoder, criterion, post-processing, checkpoint loading.

Knows tensors and configs only (ARCHITECTURE.md): never imports training, evaluation or viz.
"""

from .backbone import Res16UNet34C, SpUNet, build_backbone
from .checkpoint import load_lassm_checkpoint
from .decoder import LaSSMDecoder
from .lassm import LaSSM
from .postprocess import Prediction

__all__ = ["LaSSM", "LaSSMDecoder", "Prediction", "Res16UNet34C", "SpUNet", "build_backbone",
           "load_lassm_checkpoint"]
