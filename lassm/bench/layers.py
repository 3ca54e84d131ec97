"""Layer benchmarks: the backbone and the query decoder, each on its own (``python -m lassm.bench
backbone|decoder``; what they time is described in :mod:`lassm.bench`)."""

from __future__ import annotations

import contextlib

import torch

from ..config import BackboneConfig, DecoderConfig
from ..sparse import single_thread, spconv_available
from .scenes import load_bench_scenes, voxel_batch
from .timing import time_call


def layer_amp_dtype(device: torch.device) -> torch.dtype:
    """The layer benchmarks' autocast dtype: float16 on CUDA, bfloat16 on the CPU (CPU autocast's)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


# ------------------------------------------------------------------------------- backbone


def bench_backbone(device: str = "cuda", backends=("torch", "spconv"), precisions=("fp32", "amp"),
                   repeat: int = 10, scenes: list[dict] | None = None, native: bool = True) -> list[dict]:
    """SpUNet-v2m1 forward (eval, no_grad) and forward + backward (train) time and peak memory, one row
    per backend, build (ours, or plain spconv modules) and precision; printed as they come."""
    from ..model.backbone import SpUNet

    device = torch.device(device)
    batch = voxel_batch(scenes if scenes is not None else load_bench_scenes(), device)
    amp_dtype = layer_amp_dtype(device)
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
            from ..model.spconv_reference import SpconvSpUNet

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
            print(format_backbone_row(row), flush=True)
    return rows


BACKBONE_HEADER = (f"{'backend':8} {'build':22} {'precision':9} {'voxels':>8} {'forward ms':>11} "
                   f"{'fwd peak MB':>12} {'fwd+bwd ms':>11} {'train peak MB':>14}")


def format_backbone_row(row: dict) -> str:
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
    from ..model.ssm import causal_conv1d_kernel, triton_ssd

    cfg = cfg or DecoderConfig()
    gpu = torch.device(device).type == "cuda" and cfg.use_kernels  # the fast paths need CUDA tensors
    triton = gpu and triton_ssd() is not None
    conv = gpu and causal_conv1d_kernel() is not None
    return {"scan": "triton" if triton else "torch", "causal_conv1d": "yes" if conv else "no"}


def decoder_scalar(out) -> torch.Tensor:
    """A scalar that touches every output the decoder trains; for timing backward, not a loss."""
    total = sum(o.float().mean() for o in out.sp_seg)
    for stage in out.stages:
        for labels, masks, centres in zip(stage.labels, stage.masks, stage.centres, strict=True):
            total = total + labels.float().mean() + masks.float().mean() + centres.float().mean()
    return total


def decoder_steps(model, inputs, amp_dtype: torch.dtype | None = None):
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
        decoder_scalar(out).backward()
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
    from ..model.decoder import LaSSMDecoder

    device = torch.device(device)
    if repeat < 1:
        raise ValueError(f"repeat: expected >= 1, got {repeat}")
    for precision in precisions:
        if precision not in ("fp32", "amp"):
            raise ValueError(f"precisions: expected 'fp32' or 'amp', got {precision!r}")
    amp_dtype = layer_amp_dtype(device)
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
                forward, train_step = decoder_steps(model, (feats, coords, ranges),
                                                    amp_dtype if precision == "amp" else None)
                row = {"variant": f"-{t_layer}", "t_layer": t_layer, "superpoints": num_sp,
                       "queries": len(forward().select_idx[0]), "precision": precision,
                       "device": str(device), **kernels}
                row["forward_ms"], row["forward_peak_mb"] = time_call(forward, device, repeat, warmup)
                row["train_ms"], row["train_peak_mb"] = time_call(train_step, device, repeat, warmup)
                rows.append(row)
                print(format_decoder_row(row), flush=True)
    return rows


DECODER_HEADER = (f"{'variant':7} {'superpoints':>11} {'queries':>7} {'precision':9} {'forward ms':>11} "
                  f"{'fwd peak MB':>12} {'fwd+bwd ms':>11} {'train peak MB':>14}")


def format_decoder_row(row: dict) -> str:
    return (f"{row['variant']:7} {row['superpoints']:11d} {row['queries']:7d} {row['precision']:9} "
            f"{row['forward_ms']:11.1f} {row['forward_peak_mb']:12.0f} "
            f"{row['train_ms']:11.1f} {row['train_peak_mb']:14.0f}")
