"""Benchmarks that print numbers: ``python -m lassm.bench {backbone,decoder,train,model,scaling} [options]``.

``model`` (per-stage times of the training step and of inference) and ``scaling`` (inference time
and memory against scene size) are described in :mod:`lassm.bench_model`.

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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .augment import grid_sample_first
from .config import BackboneConfig, DecoderConfig, project_root
from .data.io import atomic_path
from .sparse import single_thread, spconv_available

BENCH_DIR = "../shared/bench"


def load_bench_scenes(folder: str | Path | None = None, count: int = 3, seed: int = 0) -> list[dict]:
    """Scenes as dicts of numpy arrays ``coord`` (N,3) float32 and ``color`` (N,3) uint8."""
    folder = Path(folder) if folder else project_root() / BENCH_DIR
    files = sorted(folder.glob("perf_*.npz")) if folder.is_dir() else []
    if files:
        return [dict(np.load(f)) for f in files[:count]]
    from .data.synthetic import generate_room

    scenes = []
    for i in range(count):
        room = generate_room(seed + i, "full")
        scenes.append({"coord": room.mesh.vertices.astype(np.float32), "color": room.mesh.colors})
    return scenes


def voxel_batch(scenes: list[dict], device, grid_size: float = 0.02) -> dict[str, torch.Tensor]:
    """Packed batch: ``feat`` [rgb/127.5-1, xyz] (6 ch), ``grid_coord``, ``offset``."""
    feats, grids, counts = [], [], []
    for scene in scenes:
        coord = torch.as_tensor(scene["coord"], dtype=torch.float32)
        grid, keep = grid_sample_first(coord, grid_size)
        color = torch.as_tensor(scene["color"][keep.numpy()], dtype=torch.float32)
        feats.append(torch.cat([color / 127.5 - 1, coord[keep]], 1))
        grids.append(grid)
        counts.append(len(grid))
    return {"feat": torch.cat(feats).to(device), "grid_coord": torch.cat(grids).to(device),
            "offset": torch.tensor(np.cumsum(counts), device=device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark


def time_call(fn, device: torch.device, repeat: int, warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds over ``repeat`` runs after ``warmup`` runs, and the peak memory (MB)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    _peak_reset(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), _peak_mb(device)


def bench_backbone(device: str = "cuda", backends=("torch", "spconv"), precisions=("fp32", "amp"),
                   repeat: int = 10, scenes: list[dict] | None = None, native: bool = True) -> list[dict]:
    from .model.backbone import SpUNet

    device = torch.device(device)
    batch = voxel_batch(scenes if scenes is not None else load_bench_scenes(), device)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    model = SpUNet(BackboneConfig()).to(device)
    rows = []
    runs = [(b, "ours") for b in backends]
    if native and "spconv" in backends:
        runs.append(("spconv", "plain spconv modules"))
    for backend, build in runs:
        if backend == "spconv" and not spconv_available():
            print("skipping backend spconv: not installed")
            continue
        net = model
        if build != "ours":
            from .model.spconv_reference import SpconvSpUNet

            net = SpconvSpUNet(BackboneConfig()).to(device)
            net.load_state_dict(model.state_dict())
        model.cfg.sparse_backend = backend
        for precision in precisions:
            if backend == "spconv" and device.type == "cpu" and precision == "amp":
                continue  # spconv's CPU build has no bfloat16 (CPU autocast's dtype)
            def ctx(precision=precision, build=build):
                stack = contextlib.ExitStack()
                if precision == "amp":
                    stack.enter_context(torch.autocast(device.type, dtype=amp_dtype))
                if build != "ours" and device.type == "cpu":
                    stack.enter_context(single_thread())  # spconv's CPU build needs one thread
                return stack

            def forward(net=net, ctx=ctx):
                net.eval()
                with torch.no_grad(), ctx():
                    net(batch["feat"], batch["grid_coord"], batch["offset"])

            def train_step(net=net, ctx=ctx):
                net.train()
                with ctx():
                    out = net(batch["feat"], batch["grid_coord"], batch["offset"])
                out.float().square().mean().backward()
                net.zero_grad(set_to_none=True)

            row = {"backend": backend, "build": build, "precision": precision, "device": str(device),
                   "voxels": int(batch["offset"][-1])}
            row["forward_ms"], row["forward_peak_mb"] = time_call(forward, device, repeat)
            can_train = not (backend == "spconv" and device.type == "cpu")  # spconv CPU: forward only
            if can_train:
                row["train_ms"], row["train_peak_mb"] = time_call(train_step, device, repeat)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'backend':8} {'build':22} {'precision':9} {'voxels':>8} {'forward ms':>11} {'fwd peak MB':>12} "
          f"{'fwd+bwd ms':>11} {'train peak MB':>14}")


def _format_row(row: dict) -> str:
    train = f"{'-':>11} {'-':>14}"
    if "train_ms" in row:
        train = f"{row['train_ms']:11.1f} {row['train_peak_mb']:14.0f}"
    return (f"{row['backend']:8} {row['build']:22} {row['precision']:9} {row['voxels']:8d} "
            f"{row['forward_ms']:11.1f} {row['forward_peak_mb']:12.0f} {train}")


# ------------------------------------------------------------------------------- decoder


def decoder_inputs(num_superpoints: int, device, in_channels: int = 32, seed: int = 0,
                   room: tuple[float, float, float] = (8.0, 6.0, 3.0)):
    """One scene for the decoder: ``[feats (S, F)], [coords (S, 3)], [(min (3,), max (3,))]``.

    Features are standard normal; centroids are uniform in a ScanNet-sized room (metres). Both come
    from a generator seeded with ``seed`` on ``device``, so a size gives the same scene every run.
    """
    if num_superpoints < 1:
        raise ValueError(f"superpoints: expected a positive count, got {num_superpoints}")
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    feats = torch.randn(num_superpoints, in_channels, generator=gen, device=device)  # (S, F)
    extent = torch.tensor(room, device=device)
    coords = torch.rand(num_superpoints, 3, generator=gen, device=device) * extent  # (S, 3) metres
    return [feats], [coords], [(torch.zeros_like(extent), extent)]


def parse_variants(tokens) -> tuple[int, ...]:
    """Decoder variants as t_layer values: "-3", "3" or "t3" -> 3; tokens may hold commas."""
    variants = []
    for token in tokens:
        for name in str(token).split(","):
            digits = name.strip().removeprefix("-").removeprefix("t")
            if not digits.isdigit():
                raise ValueError(f"variants: expected names like -3, -0, t3 or t0, got {name!r}")
            variants.append(int(digits))
    if not variants:
        raise ValueError("variants: expected at least one variant")
    return tuple(variants)


def decoder_kernels(device, cfg: DecoderConfig | None = None) -> dict[str, str]:
    """Which SSD scan and causal conv the decoder's Mamba2 mixers run on ``device``."""
    from .model.ssm import _causal_conv1d, triton_ssd

    cfg = cfg or DecoderConfig()
    gpu = torch.device(device).type == "cuda" and cfg.use_kernels  # the fast paths need CUDA tensors
    triton = gpu and triton_ssd() is not None
    conv = gpu and _causal_conv1d() is not None
    return {"scan": "triton" if triton else "torch", "causal_conv1d": "yes" if conv else "no"}


def _decoder_scalar(out) -> torch.Tensor:
    """A scalar that touches every output the decoder trains; for timing backward, not a loss."""
    total = sum(o.float().mean() for o in out.sp_seg)
    for stage in out.stages:
        for labels, masks, centres in zip(stage.labels, stage.masks, stage.centres, strict=True):
            total = total + labels.float().mean() + masks.float().mean() + centres.float().mean()
    return total


def _decoder_steps(model, inputs, amp_dtype: torch.dtype | None = None):
    """The two timed calls: eval forward under no_grad, and train forward + backward; both under
    autocast to ``amp_dtype`` when given (a fresh context per call)."""
    device_type = inputs[0][0].device.type

    def ctx():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=amp_dtype)

    def forward():
        model.eval()
        with torch.no_grad(), ctx():
            return model(*inputs)

    def train_step():
        model.train()
        with ctx():
            out = model(*inputs)
        _decoder_scalar(out).backward()
        model.zero_grad(set_to_none=True)

    return forward, train_step


def bench_decoder(device: str = "cuda", superpoints=(2000, 8000, 20000), variants=(3, 0),
                  precisions=("fp32", "amp"), repeat: int = 10, num_query: int = 400,
                  in_channels: int = 32, num_classes: int = 18, seed: int = 0,
                  warmup: int = 2) -> list[dict]:
    """Decoder forward (eval, no_grad) and forward + backward (train) time and peak memory.

    One row per superpoint count, variant (t_layer) and precision; ``queries`` is the actual Q
    (len(select_idx)): ``num_query`` once floor(alpha S) > num_query, else every superpoint (6.2).
    """
    from .model.decoder import LaSSMDecoder

    device = torch.device(device)
    if repeat < 1:
        raise ValueError(f"repeat: expected >= 1, got {repeat}")
    for precision in precisions:
        if precision not in ("fp32", "amp"):
            raise ValueError(f"precisions: expected 'fp32' or 'amp', got {precision!r}")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    kernels = decoder_kernels(device)
    rows = []
    for t_layer in variants:
        cfg = DecoderConfig(t_layer=t_layer, num_query=num_query)
        with torch.random.fork_rng(devices=[]):  # same weights every run, global RNG untouched
            torch.manual_seed(seed)
            model = LaSSMDecoder(cfg, in_channels, num_classes).to(device)
        for num_sp in superpoints:
            feats, coords, ranges = decoder_inputs(num_sp, device, in_channels, seed)
            for precision in precisions:
                forward, train_step = _decoder_steps(model, (feats, coords, ranges),
                                                     amp_dtype if precision == "amp" else None)
                row = {"variant": f"-{t_layer}", "t_layer": t_layer, "superpoints": num_sp,
                       "queries": len(forward().select_idx[0]), "precision": precision,
                       "device": str(device), **kernels}
                row["forward_ms"], row["forward_peak_mb"] = time_call(forward, device, repeat, warmup)
                row["train_ms"], row["train_peak_mb"] = time_call(train_step, device, repeat, warmup)
                rows.append(row)
                print(_format_decoder_row(row), flush=True)
    return rows


DECODER_HEADER = (f"{'variant':7} {'superpoints':>11} {'queries':>7} {'precision':9} {'forward ms':>11} "
                  f"{'fwd peak MB':>12} {'fwd+bwd ms':>11} {'train peak MB':>14}")


def _format_decoder_row(row: dict) -> str:
    return (f"{row['variant']:7} {row['superpoints']:11d} {row['queries']:7d} {row['precision']:9} "
            f"{row['forward_ms']:11.1f} {row['forward_peak_mb']:12.0f} "
            f"{row['train_ms']:11.1f} {row['train_peak_mb']:14.0f}")


# ------------------------------------------------------------------------------- training step


def bench_train(scenes: list[dict], device: str = "cuda", preset_name: str = "scannet", variants=(3, 0),
                amp: str = "auto", repeat: int = 10, augmentation: bool = True) -> list[dict]:
    """Median seconds per training step of the training loop's own code, and peak memory (see module doc)."""
    from .bench_model import _model, _pipeline, labelled_tensors
    from .train import _amp_dtype, load_batch, make_optimizer, step_generator, train_step

    device = torch.device(device)
    tensors = [labelled_tensors(s) for s in scenes]
    rows = []
    for t_layer in variants:
        cfg, model = _model(preset_name, t_layer, device, train=True)
        cfg.train.amp = amp
        pipeline = _pipeline(cfg, t_layer, augmentation)
        optimizer = make_optimizer(model, cfg.train, device)  # as lassm.train.run builds it
        amp_dtype = _amp_dtype(amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        data_ms, step_ms = [], []
        for i in range(repeat + 2):
            if i == 2:
                _peak_reset(device)
            _sync(device)
            start = time.perf_counter()
            batch = load_batch(tensors, pipeline, step_generator(0, 0, i, 0, device), device)
            _sync(device)
            loaded = time.perf_counter()
            train_step(model, optimizer, scaler, batch, cfg.train.lr, amp_dtype, cfg.train)
            _sync(device)
            if i >= 2:  # two warm-up steps
                data_ms.append((loaded - start) * 1e3)
                step_ms.append((time.perf_counter() - loaded) * 1e3)
        data, step = statistics.median(data_ms), statistics.median(step_ms)
        rows.append({"variant": f"-{t_layer}", "preset": preset_name, "amp": str(amp_dtype or "fp32"),
                     "augmentation": augmentation, "voxels": int(batch["offset"][-1]),
                     "data_ms": data, "step_ms": step, "s_per_step": (data + step) / 1e3,
                     "peak_mb": _peak_mb(device)})
        print(_format_train_row(rows[-1]), flush=True)
        del model, optimizer, batch
    return rows


TRAIN_HEADER = (f"{'variant':7} {'precision':15} {'augment':7} {'voxels':>8} {'data ms':>8} {'step ms':>8} "
                f"{'s/step':>7} {'peak MB':>8}")


def _format_train_row(row: dict) -> str:
    augmented = "yes" if row["augmentation"] else "no"
    return (f"{row['variant']:7} {row['amp']:15} {augmented:7} {row['voxels']:>8,} {row['data_ms']:>8.1f} "
            f"{row['step_ms']:>8.1f} {row['s_per_step']:>7.3f} {row['peak_mb']:>8,.0f}")


# ------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lassm.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p = sub.add_parser("backbone", help="SpUNet-v2m1 forward and forward+backward time and memory")
    p.add_argument("--device", default=default_device)
    p.add_argument("--backends", nargs="+", default=["torch", "spconv"], choices=["torch", "spconv"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=["fp32", "amp"])
    p.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (median)")
    p.add_argument("--scenes", type=int, default=3, help="scenes in the batch")
    p.add_argument("--bench-dir", default=None, help=f"folder of perf_*.npz scenes (default {BENCH_DIR})")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")

    d = sub.add_parser("decoder", help="LaSSM decoder forward and forward+backward time and memory")
    d.add_argument("--device", default=default_device)
    d.add_argument("--superpoints", nargs="+", type=int, default=[2000, 8000, 20000],
                   help="superpoints of the one scene, one row each")
    d.add_argument("--variants", nargs="+", default=["-3", "-0"],
                   help="decoder variants by t_layer (-3: three cross-attention layers, -0: none): "
                        "--variants=-3,-0, --variants -3 -0, --variants t3 t0 or --variants 3 0")
    d.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=["fp32", "amp"])
    d.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (median)")
    d.add_argument("--queries", type=int, default=400, help="num_query of the decoder")
    d.add_argument("--json", default=None, help="also write the rows to this JSON file")
    t = sub.add_parser("train", help="the training loop's step on the 3 bench rooms: s/step, peak memory")
    t.add_argument("--device", default=default_device)
    t.add_argument("--preset", default="scannet", help="model preset (scannet: 32-ch SpUNet, 400 queries)")
    t.add_argument("--variants", nargs="+", default=["-3", "-0"], help="as for decoder")
    t.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="train.amp (auto: bf16 where the GPU has it; the authors timed fp16)")
    t.add_argument("--no-augment", action="store_true",
                   help="voxelisation only (the validation pipeline), as the authors' timing")
    t.add_argument("--repeat", type=int, default=10, help="timed steps (median), after two warm-up steps")
    t.add_argument("--bench-dir", default=None, help=f"folder of perf_*.npz scenes (default {BENCH_DIR})")
    t.add_argument("--json", default=None, help="also write the rows to this JSON file")
    m = sub.add_parser("model", help="per-stage times of the training step (3 bench rooms) and of inference "
                                     "(perf_0), end to end, peak memory")
    m.add_argument("--device", default=default_device)
    m.add_argument("--preset", default="scannet", help="model preset (scannet: 32-ch SpUNet, 400 queries)")
    m.add_argument("--variants", nargs="+", default=["-3", "-0"], help="as for decoder")
    m.add_argument("--modes", nargs="+", default=["train", "infer"],
                   choices=["train", "infer", "infer-eager"],
                   help="infer-eager: inference with the decoder layers op by op (per-layer times), "
                        "not as a CUDA graph")
    m.add_argument("--amp", default="fp16", choices=["bf16", "fp16", "off"],
                   help="autocast dtype (the authors timed fp16)")
    m.add_argument("--augment", action="store_true", help="train with the preset's augmentation "
                   "(default: voxelisation only, as the authors' timing)")
    m.add_argument("--repeat", type=int, default=10, help="runs per measurement (median), after warm-up")
    m.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    m.add_argument("--profile", action="store_true", help="also print torch.profiler's operator table")
    m.add_argument("--bench-dir", default=None, help=f"folder of perf_*.npz scenes (default {BENCH_DIR})")
    m.add_argument("--json", default=None, help="also write the rows to this JSON file")
    s = sub.add_parser("scaling", help="inference time and peak memory for 100k..1M-point scenes, "
                                       "log-log slope")
    s.add_argument("--device", default=default_device)
    s.add_argument("--preset", default="scannet")
    s.add_argument("--variants", nargs="+", default=["-3"], help="as for decoder")
    s.add_argument("--sizes", nargs="+", type=int, default=[100_000, 250_000, 500_000, 1_000_000])
    s.add_argument("--amp", default="fp16", choices=["bf16", "fp16", "off"])
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--bench-dir", default=None, help=f"folder of perf_*.npz scenes (default {BENCH_DIR})")
    s.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    if args.what == "backbone":
        if args.scenes < 1:
            parser.error("--scenes must be >= 1")
        scenes = load_bench_scenes(args.bench_dir, args.scenes)
        print(f"SpUNet-v2m1 (32 ch), {len(scenes)} scenes, device {args.device}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(HEADER)
        rows = bench_backbone(args.device, args.backends, args.precisions, args.repeat, scenes)
    elif args.what in ("model", "scaling"):
        rows = _main_model(args, parser)
    elif args.what == "train":
        try:
            variants = parse_variants(args.variants)
        except ValueError as err:
            parser.error(str(err))
        scenes = load_bench_scenes(args.bench_dir, 3)
        print(f"training step of lassm.train, preset {args.preset}, {len(scenes)} scenes, "
              f"device {args.device}, torch {torch.__version__}")
        print(TRAIN_HEADER)
        rows = bench_train(scenes, args.device, args.preset, variants, args.amp, args.repeat,
                           not args.no_augment)
    else:
        try:
            variants = parse_variants(args.variants)
            for t_layer in variants:
                DecoderConfig(t_layer=t_layer, num_query=args.queries)  # checks the ranges
        except ValueError as err:
            parser.error(str(err))
        if min(args.superpoints) < 1:
            parser.error("--superpoints must be >= 1")
        kernels = decoder_kernels(args.device)
        print(f"LaSSM decoder (d_model {DecoderConfig.d_model}, {DecoderConfig.num_layers} layers, "
              f"{args.queries} queries), 1 scene, F = 32, C = 18, device {args.device}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        scan = ("Triton mamba_chunk_scan_combined" if kernels["scan"] == "triton"
                else "PyTorch chunked scan (ssd_chunked)")
        print(f"SSD scan: {scan}; causal-conv1d: {kernels['causal_conv1d']}")
        print(DECODER_HEADER)
        rows = bench_decoder(args.device, args.superpoints, variants, args.precisions, args.repeat,
                             args.queries)
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1))


def _environment(device: str) -> str:
    text = f"torch {torch.__version__}"
    if torch.device(device).type == "cuda":
        text += f", CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}"
    else:
        text += f", CPU, {torch.get_num_threads()} threads"
    return text


def _main_model(args, parser):
    from . import bench_model as bm

    try:
        variants = parse_variants(args.variants)
    except ValueError as err:
        parser.error(str(err))
    scenes = load_bench_scenes(args.bench_dir, 3)
    print(f"preset {args.preset}, amp {args.amp}, {_environment(args.device)}", flush=True)
    if args.what == "scaling":
        if min(args.sizes) < 1:
            parser.error("--sizes must be positive point counts")
        results = []
        for t_layer in variants:
            print(f"inference of one scene, decoder -{t_layer}\n{bm.SCALING_HEADER}", flush=True)
            res = bm.bench_scaling(scenes, args.device, args.sizes, args.preset, t_layer, args.amp,
                                   args.repeat, args.warmup)
            print(f"log-log slope: time {res['time_slope']:.2f}, peak memory over the model "
                  f"{res['memory_slope']:.2f}", flush=True)
            results.append({"variant": f"-{t_layer}", **res})
        return results
    rows = []
    for t_layer in variants:
        if "train" in args.modes:
            rows.append(bm.bench_model_train(scenes, args.device, args.preset, t_layer, args.amp, args.repeat,
                                             args.warmup, args.augment))
            print(f"train -{t_layer}: {rows[-1]['total_ms']:.1f} ms/step, {rows[-1]['peak_mb']:,.0f} MB",
                  flush=True)
        if "infer" in args.modes:
            rows.append(bm.bench_model_infer(scenes[0], args.device, args.preset, t_layer, args.amp,
                                             args.repeat, args.warmup))
            print(f"infer -{t_layer}: {rows[-1]['total_ms']:.1f} ms, {rows[-1]['peak_mb']:,.0f} MB",
                  flush=True)
        if "infer-eager" in args.modes:
            rows.append(bm.bench_model_infer(scenes[0], args.device, args.preset, t_layer, args.amp,
                                             args.repeat, args.warmup, graphs=False))
            print(f"infer (no graph) -{t_layer}: {rows[-1]['total_ms']:.1f} ms", flush=True)
    print(bm.format_stages(rows))
    if args.profile:
        _print_profiles(args, scenes, variants, bm)
    return rows


def _print_profiles(args, scenes, variants, bm) -> None:
    from .train import _amp_dtype

    device = torch.device(args.device)
    for t_layer in variants:
        if "train" in args.modes:
            step, _, _ = bm.train_fn(scenes, device, args.preset, t_layer, args.amp, args.augment)
            print(f"\nprofile: training step -{t_layer}\n{bm.profile_table(step, device)}")
        cfg, model = bm._model(args.preset, t_layer, device, train=False)
        infer, _ = bm.inference_fn(model, cfg, bm.labelled_tensors(scenes[0]), device,
                                   _amp_dtype(args.amp, device), t_layer)
        print(f"\nprofile: inference -{t_layer}\n{bm.profile_table(infer, device)}")


if __name__ == "__main__":
    main()
