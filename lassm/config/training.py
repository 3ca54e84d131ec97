"""The training run's settings (REFERENCE_SPEC 10): :class:`TrainConfig`, the ``train`` section of a
:class:`lassm.config.Config`, re-exported by :mod:`lassm.config` and :mod:`lassm.config.schema`.

In a module of its own, beside :mod:`.schema` (the data, augmentation and model sections), to keep each
readable in one go.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .typed import check_positive


@dataclass
class TrainConfig:
    """The training run (REFERENCE_SPEC 10): optimiser, schedule, precision, evaluation, outputs."""

    experiment: str = "synthetic"  # run folder: <output_root>/<experiment>/
    output_root: str = "outputs"  # where runs are written (git-ignored)
    # epochs of `loop` passes over the training split each; validation (eval_interval), checkpoints and the
    # ETA count these epochs (the reference's "trainer epochs": epoch / eval_epoch, spec 10.1)
    epochs: int = 512
    loop: int = 1  # passes over the training split per epoch (the reference's data loop: ScanNet200 3, -sc 8)
    batch_size: int = 3  # scenes per step per process (the reference: 3 per GPU, 4 GPUs = 12 a step)
    lr: float = 3e-4  # AdamW peak learning rate, decayed per step by (1 - step / (T + 1)) ** 0.9
    weight_decay: float = 0.05  # on every parameter, as the reference (spec 11.1.5)
    poly_power: float = 0.9  # exponent of the poly decay
    amp: str = "auto"  # "auto" (bf16 where the GPU has it, else fp16 + loss scaling), "bf16", "fp16", "off"
    clip_grad: float = 10.0  # max gradient L2 norm (0 = no clipping)
    # spec 11.1.4: the reference clips loss-SCALED fp16 gradients before unscaling. True reproduces it;
    # default: unscale first, then clip the true gradients.
    clip_scaled_grads: bool = False
    eval_interval: tuple[tuple[int, int], ...] = ((1, 8), (496, 1))  # (from epoch, every n epochs), spec 10.3
    # checkpoint to start from (ours, the authors', or a MinkowskiEngine one such as Mask3D's backbone,
    # converted); relative to the working folder; "" = random init. Read when a run starts (not when it
    # resumes): a missing file is an error then, naming where the released file comes from
    init_weights: str = ""
    skip_keys: tuple[str, ...] = ()  # entries whose key contains one of these are not loaded (class heads)
    resume: bool = True  # continue from <run>/model_last.pth when it exists
    log_every: int = 50  # steps between log lines (metrics.jsonl, TensorBoard, console)
    num_workers: int = 2  # data-loading processes per training process
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda"
    max_steps: int = 0  # stop after this many steps in total (0 = run all epochs); for smoke runs
    # cap an epoch (the unit of validation and checkpoints) at this many steps, each epoch a new random part
    # of the training set; for sets of thousands of synthetic frames (0 = one full pass per epoch)
    steps_per_epoch: int = 0
    val_max_scenes: int = 0  # validate on at most this many scenes (0 = all)
    validation: bool = True  # False: none at all, not even at the end (benchmarks); no model_best.pth
    # model_last.pth at an epoch's end only once this many minutes have passed since it was last written
    # (0 = every epoch); always at a validation epoch and at the end. A resumed run restarts from the last
    # written epoch, so what it repeats is still exact; short epochs no longer write a file each
    checkpoint_minutes: float = 10.0
    # torch.distributed backend under torchrun: "auto" (NCCL on GPUs, else gloo), "nccl" or "gloo";
    # gloo also runs several processes on one GPU (a test of the DDP path without more GPUs)
    dist_backend: str = "auto"
    deterministic: str = "cpu"  # deterministic kernels: "cpu" (CPU runs repeat exactly), "always", "never"

    def __post_init__(self):
        choices = {"amp": ("auto", "bf16", "fp16", "off"), "deterministic": ("cpu", "always", "never")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if self.steps_per_epoch < 0:
            raise ValueError(f"train.steps_per_epoch: expected 0 (a full pass) or a positive integer, "
                             f"got {self.steps_per_epoch}")
        check_positive(self, "train", ("epochs", "loop", "batch_size", "log_every"))
        for name in ("max_steps", "val_max_scenes", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name}: expected 0 (no limit / none) or a positive integer, "
                                 f"got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr: expected > 0, got {self.lr}")
        for name in ("weight_decay", "poly_power", "clip_grad", "checkpoint_minutes"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"train.{name}: expected >= 0 and finite, got {getattr(self, name)}")
        if not self.eval_interval or any(start < 1 or every < 1 for start, every in self.eval_interval):
            raise ValueError(f"train.eval_interval: expected one or more (from epoch >= 1, every n >= 1) "
                             f"pairs, e.g. ((1, 8), (496, 1)); got {self.eval_interval}")
        if not self.experiment.strip():
            raise ValueError("train.experiment: expected a run folder name, got ''")
        if self.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", self.device):
            raise ValueError(f"train.device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dist_backend not in ("auto", "nccl", "gloo"):
            raise ValueError(f"train.dist_backend: expected 'auto', 'nccl' or 'gloo', "
                             f"got {self.dist_backend!r}")
