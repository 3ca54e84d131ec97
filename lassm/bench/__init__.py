"""Speed benchmarks that print numbers:
``python -m lassm.bench {backbone,decoder,train,model,scaling,ddp,ops} [options]``.

``model`` (per-stage times of the training step and of inference) and ``scaling`` (inference time
and memory against scene size) are described in :mod:`lassm.bench.model`.

``backbone`` times SpUNet-v2m1 on a batch of ScanNet-sized scenes (the three ~250k-point rooms
of ``../shared/bench`` when present, else full-size synthetic rooms), voxelized at 2 cm:
forward in eval mode, and forward + backward in train mode, per sparse backend and precision,
with peak memory. With spconv installed it also times the same network assembled from plain
spconv modules, which shows what our layer wrappers cost on top of spconv.

``decoder`` times LaSSM's query decoder (REFERENCE_SPEC 6) on ONE scene of random superpoints
(F = 32 features, the SpUNet output; C = 18 classes; centroids uniform in an 8 m x 6 m x 3 m
room): forward in eval mode under no_grad, and forward + backward of a plain scalar (the mean
of every stage's outputs, no loss) in train mode, for 400 queries over 2k, 8k and 20k
superpoints, the "-3" (t_layer = 3, three cross-attention layers) and "-0" (t_layer = 0, kNN
aggregation only) variants, in float32 and under autocast (float16 on CUDA, bfloat16 on CPU),
with peak memory. It first says which SSD scan (Triton or the PyTorch chunked scan) and
depthwise conv (causal-conv1d or PyTorch) the Mamba2 mixers use. Name the variants as
``--variants -3 -0``, ``--variants=-3,-0`` or ``--variants t3 t0`` (argparse takes "-3" as a
value only while no option looks like a negative number; the "=" and "t" forms never depend on it).

``train`` times the training loop's own step (``lassm.train.load_batch`` + ``lassm.train.train_step``)
on the batch of the three bench rooms with a full preset model (default ``scannet``): scenes move
to the device, the preset's training augmentation runs there (``--no-augment``: the validation
pipeline, i.e. voxelisation only, as the authors' timing), then forward, losses, backward,
clipping and AdamW. It prints the median data time (to device + augmentation + packing), the
optimisation time and their sum in seconds per step, and the peak memory.

``ddp`` runs the training loop itself (``lassm.train.launch``) for ``--steps`` steps, first in one
process, then in ``--gpus`` processes under torchrun (DistributedDataParallel), at the same per-process
batch (``--batch-size``), without validation, on ``--data-root`` or on ``--rooms`` full-size synthetic
rooms it generates and preprocesses as the ``synthetic`` preset's data (``--preset scannet``: the full
model on them). It prints per run the processes, the per-process batch, seconds per step (the median,
after ``--warmup`` steps, of the run's own ``step_seconds`` in ``metrics.jsonl``), scenes per second and
the speed-up over one process. Both runs use ``--threads`` CPU threads per process. ``--device cpu``
runs it with gloo (the tests: ``--tiny``, 2 processes, a few steps).

``ops`` counts the aten operators that one training step (the same step as ``model``) dispatches on
the CPU, per stage: the proxy for the GPU's kernel launches when no GPU is at hand (:mod:`lassm.bench.ops`).

Modules: ``timing`` (device sync, peak memory, median timing, the per-stage StageTimer, JSON),
``scenes`` (bench rooms or synthetic ones, as scene arrays and tensors), ``layers`` (backbone,
decoder), ``model`` (training step, per-stage model, scaling), ``ddp`` (one process against several),
``ops`` (aten operators per stage), ``cli`` (the command line).
"""

from .cli import main
from .ddp import DDP_HEADER, bench_ddp, format_ddp_row
from .layers import (
    BACKBONE_HEADER,
    DECODER_HEADER,
    bench_backbone,
    bench_decoder,
    decoder_inputs,
    decoder_kernels,
    format_backbone_row,
    format_decoder_row,
    parse_variants,
)
from .model import (
    SCALING_HEADER,
    TRAIN_HEADER,
    TrainingStep,
    bench_model_infer,
    bench_model_train,
    bench_scaling,
    bench_train,
    format_stages,
    format_train_row,
    loglog_slope,
)
from .scenes import BENCH_DIR, load_bench_scenes, scaled_scene, synthetic_bench_scene, voxel_batch
from .timing import StageTimer, time_call

__all__ = ["BACKBONE_HEADER", "BENCH_DIR", "DDP_HEADER", "DECODER_HEADER", "SCALING_HEADER", "TRAIN_HEADER",
           "StageTimer", "TrainingStep", "bench_backbone", "bench_ddp", "bench_decoder", "bench_model_infer",
           "bench_model_train", "bench_scaling", "bench_train", "decoder_inputs", "decoder_kernels",
           "format_backbone_row", "format_ddp_row", "format_decoder_row", "format_stages", "format_train_row",
           "load_bench_scenes", "loglog_slope", "main", "parse_variants", "scaled_scene",
           "synthetic_bench_scene", "time_call", "voxel_batch"]
