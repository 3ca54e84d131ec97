"""The command line: ``python -m lassm.bench {backbone,decoder,train,model,scaling,ddp,ops} [options]``.

A thin wrapper: each verb loads the scenes, prints a title and a header, calls the benchmark
function of :mod:`lassm.bench.layers`, :mod:`lassm.bench.model` or :mod:`lassm.bench.ddp` (which
prints its rows), and with ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from pathlib import Path

import torch

from ..cli import check_output_file, run_command
from ..config import DecoderConfig, apply_overrides, preset, tiny
from . import model as bm
from .ddp import DDP_HEADER, bench_ddp, format_ddp_row
from .layers import (
    BACKBONE_HEADER,
    DECODER_HEADER,
    bench_backbone,
    bench_decoder,
    decoder_kernels,
    parse_variants,
)
from .scenes import BENCH_DIR, load_bench_scenes, synthetic_bench_scene
from .timing import write_rows


def build_parser() -> argparse.ArgumentParser:
    description = importlib.import_module(__package__).__doc__  # lassm.bench's docstring
    parser = argparse.ArgumentParser(prog="python -m lassm.bench", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    bench_dir = f"folder of perf_*.npz scenes (default {BENCH_DIR})"
    p = sub.add_parser("backbone", help="SpUNet-v2m1 forward and forward+backward time and memory")
    p.add_argument("--device", default=default_device)
    p.add_argument("--backends", nargs="+", default=["torch", "spconv"], choices=["torch", "spconv"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=["fp32", "amp"])
    p.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (median)")
    p.add_argument("--scenes", type=int, default=3, help="scenes in the batch")
    p.add_argument("--bench-dir", default=None, help=bench_dir)
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
    t.add_argument("--bench-dir", default=None, help=bench_dir)
    t.add_argument("--json", default=None, help="also write the rows to this JSON file")
    m = sub.add_parser("model", help="per-stage times of the training step (3 bench rooms) and of inference "
                                     "(perf_0), end to end, peak memory")
    m.add_argument("--device", default=default_device)
    m.add_argument("--preset", default="scannet", help="model preset (scannet: 32-ch SpUNet, 400 queries)")
    m.add_argument("--variants", nargs="+", default=["-3", "-0"], help="as for decoder")
    m.add_argument("--modes", nargs="+", default=["train", "infer"],
                   choices=["train", "train-eager", "infer", "infer-eager"],
                   help="train-eager / infer-eager: the decoder layers op by op (per-layer times), not as "
                        "CUDA graphs")
    m.add_argument("--amp", default="fp16", choices=["bf16", "fp16", "off"],
                   help="autocast dtype (the authors timed fp16)")
    m.add_argument("--augment", action="store_true", help="train with the preset's augmentation "
                   "(default: voxelisation only, as the authors' timing)")
    m.add_argument("--repeat", type=int, default=10, help="runs per measurement (median), after warm-up")
    m.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    m.add_argument("--profile", action="store_true", help="also print torch.profiler's operator table "
                   "and, on a GPU, where torch's sync debug mode flags a host synchronisation")
    m.add_argument("--bench-dir", default=None, help=bench_dir)
    m.add_argument("--json", default=None, help="also write the rows to this JSON file")
    o = sub.add_parser("ops", help="aten operators per training step and stage, on the CPU: the proxy for "
                                   "the GPU's kernel launches (lassm.bench.ops)")
    o.add_argument("--preset", default="scannet", help="model preset (scannet: 32-ch SpUNet, 400 queries)")
    o.add_argument("--variants", nargs="+", default=["-3", "-0"], help="as for decoder")
    o.add_argument("--scenes", type=int, default=3, help="bench rooms in the batch")
    o.add_argument("--bench-dir", default=None, help=bench_dir)
    o.add_argument("--small", action="store_true", help="small synthetic rooms instead of the bench rooms "
                   "(seconds instead of minutes; the decoder and loss counts hardly depend on the size)")
    o.add_argument("--json", default=None, help="also write the counts to this JSON file")
    s = sub.add_parser("scaling", help="inference time and peak memory for 100k..1M-point scenes, "
                                       "log-log slope")
    s.add_argument("--device", default=default_device)
    s.add_argument("--preset", default="scannet")
    s.add_argument("--variants", nargs="+", default=["-3"], help="as for decoder")
    s.add_argument("--sizes", nargs="+", type=int, default=[100_000, 250_000, 500_000, 1_000_000])
    s.add_argument("--amp", default="fp16", choices=["bf16", "fp16", "off"])
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--bench-dir", default=None, help=bench_dir)
    s.add_argument("--json", default=None, help="also write the results to this JSON file")
    g = sub.add_parser("ddp", help="the training loop in 1 and in --gpus processes (torchrun, DDP): s/step, "
                                   "scenes/s, speed-up")
    g.add_argument("--gpus", type=int, default=2, help="processes of the second run, one per GPU")
    g.add_argument("--device", default=default_device, help="cuda (NCCL) or cpu (gloo, for tests)")
    g.add_argument("--preset", default="synthetic",
                   help="config preset (synthetic: 16-ch SpUNet, 100 queries; scannet: the full model)")
    g.add_argument("--variant", default="-3", help="decoder: -3 or -0 (--variant=-0)")
    g.add_argument("--data-root", default=None,
                   help="processed scenes (<root>/train, <root>/val); default: --rooms new synthetic rooms")
    g.add_argument("--rooms", type=int, default=8, help="synthetic rooms to generate without --data-root")
    g.add_argument("--room-size", default="full", choices=["full", "small"], help="of the generated rooms")
    g.add_argument("--batch-size", type=int, default=3, help="scenes per step and process (train.batch_size)")
    g.add_argument("--steps", type=int, default=30, help="training steps of each run")
    g.add_argument("--warmup", type=int, default=10, help="first steps not timed")
    g.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="train.amp")
    g.add_argument("--num-workers", type=int, default=2, help="data-loading processes per training process")
    g.add_argument("--threads", type=int, default=1,
                   help="CPU threads of each training process, both runs (1: what torchrun gives several)")
    g.add_argument("--tiny", action="store_true", help="the tiny smoke-test model (lassm.config.tiny)")
    g.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    g.add_argument("--out", default=None, help="keep the data and runs in this folder (default: a "
                                              "temporary one, removed)")
    g.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        parser.error("--repeat must be >= 1")
    return run_command(lambda: _command(args, parser))


def _command(args, parser) -> None:
    if args.json:
        check_output_file(args.json, "--json")  # before minutes of timing
    _check_device(getattr(args, "device", "cpu"))
    bench_dir = getattr(args, "bench_dir", None)
    if bench_dir and not Path(bench_dir).is_dir():  # an explicit folder: no silent synthetic fallback
        raise FileNotFoundError(f"--bench-dir: {bench_dir} is not a folder; expected perf_*.npz scenes")
    verbs = {"backbone": _backbone, "decoder": _decoder, "train": _train, "model": _model,
             "scaling": _scaling, "ddp": _ddp, "ops": _ops}
    rows = verbs[args.what](args, parser)
    if args.json:
        write_rows(args.json, rows)


def _check_device(name: str) -> None:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: expected cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {name} requested but CUDA is not available; use --device cpu")


def _variants(args, parser) -> tuple[int, ...]:
    try:
        return parse_variants(args.variants)
    except ValueError as err:
        parser.error(str(err))


def _environment(device: str) -> str:
    text = f"torch {torch.__version__}"
    if torch.device(device).type == "cuda":
        text += f", CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}"
    else:
        text += f", CPU, {torch.get_num_threads()} threads"
    return text


def _backbone(args, parser) -> list[dict]:
    if args.scenes < 1:
        parser.error("--scenes must be >= 1")
    scenes = load_bench_scenes(args.bench_dir, args.scenes)
    print(f"SpUNet-v2m1 (32 ch), {len(scenes)} scenes, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(BACKBONE_HEADER)
    return bench_backbone(args.device, args.backends, args.precisions, args.repeat, scenes)


def _decoder(args, parser) -> list[dict]:
    variants = _variants(args, parser)
    try:
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
    return bench_decoder(args.device, args.superpoints, variants, args.precisions, args.repeat, args.queries)


def _train(args, parser) -> list[dict]:
    variants = _variants(args, parser)
    scenes = load_bench_scenes(args.bench_dir, 3)
    print(f"training step of lassm.train, preset {args.preset}, {len(scenes)} scenes, "
          f"device {args.device}, torch {torch.__version__}")
    print(bm.TRAIN_HEADER)
    return bm.bench_train(scenes, args.device, args.preset, variants, args.amp, args.repeat,
                          not args.no_augment)


def _scaling(args, parser) -> list[dict]:
    variants = _variants(args, parser)
    if min(args.sizes) < 1:
        parser.error("--sizes must be positive point counts")
    scenes = load_bench_scenes(args.bench_dir, 3)
    print(f"preset {args.preset}, amp {args.amp}, {_environment(args.device)}", flush=True)
    results = []
    for t_layer in variants:
        print(f"inference of one scene, decoder -{t_layer}\n{bm.SCALING_HEADER}", flush=True)
        res = bm.bench_scaling(scenes, args.device, args.sizes, args.preset, t_layer, args.amp,
                               args.repeat, args.warmup)
        print(f"log-log slope: time {res['time_slope']:.2f}, peak memory over the model "
              f"{res['memory_slope']:.2f}", flush=True)
        results.append({"variant": f"-{t_layer}", **res})
    return results


def _model(args, parser) -> list[dict]:
    variants = _variants(args, parser)
    scenes = load_bench_scenes(args.bench_dir, 3)
    print(f"preset {args.preset}, amp {args.amp}, {_environment(args.device)}", flush=True)
    rows = []
    for t_layer in variants:
        for mode in [m for m in ("train-eager", "train") if m in args.modes]:
            rows.append(bm.bench_model_train(scenes, args.device, args.preset, t_layer, args.amp, args.repeat,
                                             args.warmup, args.augment, graphs=mode == "train"))
            print(f"{rows[-1]['mode']} -{t_layer}: {rows[-1]['total_ms']:.1f} ms/step, "
                  f"{rows[-1]['peak_mb']:,.0f} MB", flush=True)
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
        _print_profiles(args, scenes, variants)
    return rows


def _print_profiles(args, scenes: list[dict], variants: tuple[int, ...]) -> None:
    from ..runtime import amp_dtype

    device = torch.device(args.device)
    for t_layer in variants:
        for mode in [m for m in ("train-eager", "train") if m in args.modes]:
            step = bm.TrainingStep(scenes, device, args.preset, t_layer, args.amp, args.augment,
                                   graphs=mode == "train")
            print(f"\nprofile: training step -{t_layer} ({mode})\n{bm.profile_table(step, device)}")
            print(bm.format_sync_sites(bm.sync_sites(step, device)))
        cfg, model = bm.build_model(args.preset, t_layer, device, train=False)
        infer, _ = bm.inference_fn(model, cfg, scenes[0], device, amp_dtype(args.amp, device))
        print(f"\nprofile: inference -{t_layer}\n{bm.profile_table(infer, device)}")
        print(bm.format_sync_sites(bm.sync_sites(infer, device)))


def _ops(args, parser) -> list[dict]:
    from .ops import count_ops, format_ops

    variants = _variants(args, parser)
    if args.scenes < 1:
        parser.error("--scenes must be >= 1")
    scenes = ([synthetic_bench_scene(i, "small") for i in range(args.scenes)] if args.small
              else load_bench_scenes(args.bench_dir, args.scenes))
    print(f"training step of lassm.train, preset {args.preset}, {len(scenes)} scenes, sparse backend torch, "
          f"fp32, {_environment('cpu')}", flush=True)
    columns = {}
    for t_layer in variants:  # the model's defaults pick the pure-PyTorch paths on the CPU
        step = bm.TrainingStep(scenes, "cpu", args.preset, t_layer, "off", augmentation=False)
        columns[f"-{t_layer}"] = count_ops(step)
    print(format_ops(columns))
    return [{"variant": name, "preset": args.preset, "scenes": len(scenes), "stages": counts}
            for name, counts in columns.items()]


def _ddp(args, parser) -> list[dict]:
    if min(args.gpus, args.steps, args.batch_size, args.threads) < 1 or args.rooms < 3:
        parser.error("--gpus, --steps, --batch-size and --threads must be >= 1, --rooms >= 3")
    if not 0 <= args.warmup < args.steps:
        parser.error("--warmup must be >= 0 and below --steps")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="lassm-bench-ddp-") as scratch:
        out = Path(args.out or scratch)
        root = args.data_root
        if root is None:  # the synthetic preset's own data: generated rooms, preprocessed as ScanNet
            from ..data.prepare import prepare

            root = out / "data"
            print(f"generating {args.rooms} {args.room_size} synthetic rooms into {root}", flush=True)
            prepare("synthetic", out / "raw", root, workers=min(8, os.cpu_count() or 1), num_rooms=args.rooms,
                    room_size=args.room_size)
        cfg = preset(args.preset, variant=args.variant)
        if args.tiny:
            tiny(cfg)
        backend = "gloo" if device.type == "cpu" else "auto"  # auto: NCCL on GPUs
        cfg = apply_overrides(cfg, {"data.root": str(root), "train.device": args.device,
                                    "train.dist_backend": backend, "train.batch_size": args.batch_size,
                                    "train.amp": args.amp, "train.num_workers": args.num_workers})
        cfg = apply_overrides(cfg, args.set)
        rows = bench_ddp(cfg, args.gpus, out / "runs", args.steps, args.warmup, args.threads)
    where = _environment(args.device) if device.type == "cuda" else f"torch {torch.__version__}, CPU"
    print(f"\ntraining loop, preset {args.preset} {args.variant}{' (tiny)' if args.tiny else ''}, "
          f"{args.steps} steps ({args.warmup} warm-up), amp {args.amp}, {args.threads} CPU threads per "
          f"process, {where}")
    print(DDP_HEADER)
    for row in rows:
        print(format_ddp_row(row))
    return [{**row, "device": args.device, "preset": args.preset, "variant": args.variant} for row in rows]

