"""LaSSM's network: backbones now; pooling, decoder, criterion and post-processing follow.

Knows tensors and configs only (ARCHITECTURE.md): never imports training, evaluation or viz.
"""

from .backbone import Res16UNet34C, SpUNet, build_backbone

__all__ = ["Res16UNet34C", "SpUNet", "build_backbone"]
