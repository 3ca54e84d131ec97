"""Training LaSSM (REFERENCE_SPEC 10): one entry point for notebooks, the command line and torchrun.

    from lassm import config, train
    cfg = config.synthetic(); cfg.train.epochs = 10
    train.run(cfg)                                    # a notebook or a script
    train.launch(cfg, gpus=2)                         # one process per GPU under torchrun
    python -m lassm.train --preset synthetic --set train.epochs=10
    torchrun --nproc_per_node 4 -m lassm.train --config outputs/scannet-3/config.json
    python -m lassm.train --preset scannetpp --variant -3-sc --set data.root=data/scannetpp

The scannet, scannet200 and scannetpp presets carry the training recipe of each released config
(``--variant``, :mod:`lassm.config.recipes`), initial weights included: read from ``weights/...`` when a
run starts (a missing file stops it, saying where the file comes from); ``--set train.init_weights=""``
trains from random weights.

Distributed mode is read from torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``);
across nodes use torchrun's usual ``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint`` flags.

A run writes into ``<output_root>/<experiment>/``: ``config.json`` (the resolved config),
``metrics.jsonl`` (one JSON line per log step, epoch and validation; a log step's line also holds
``step_seconds``, the mean wall time of the steps since the last one), TensorBoard scalars under
``tb/``, and the checkpoints ``model_last.pth`` and ``model_best.pth`` (best validation AP50; of equal
ones the latest), each written atomically; the ``model_last.pth`` a new one replaces is kept as
``model_prev.pth``. ``model_last.pth`` is written at the end of an epoch once ``train.checkpoint_minutes``
have passed since it was last written (0: every epoch), and always after a validation and at the end of
the run. A rerun with ``train.resume`` continues from ``model_last.pth`` (from ``model_prev.pth`` when the
last one cannot be read): model, optimiser, loss scaler, epoch and step, the epochs after it repeated.
``train.lock`` marks a folder in use: a second run into it refuses to start. All randomness of a step
(data order, augmentation) is a function of the seed, the epoch and the step, so a resumed run repeats
what an uninterrupted one would have done: bit for bit on a CPU with one thread (with more threads, and
on GPUs, kernels may split reductions differently between processes, so the last bits can differ).

Under DistributedDataParallel every process validates every world-th scene and the scenes' AP
associations are gathered to all of them (:func:`validate`): the metrics of one process, in a share of
its time. Losses are summed on the device and copied to the host only to be logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import augment
from .cli import dash_values, run_command
from .config import Config, apply_overrides, preset
from .config.recipes import weights_hint
from .data.batch import pack_scenes
from .data.dataset import EpochBatches, SceneDataset, keep_as_list, training_set, validation_set
from .data.dataset import epoch_steps as epoch_steps  # re-exported: lassm.train.epoch_steps
from .data.io import atomic_path
from .evaluate import evaluate_matches, prediction_matches
from .inference import predict_arrays, step_generator
from .model import LaSSM
from .model.checkpoint import LoadReport, RunLock, load_initial_weights, plain, restore, save_checkpoint
from .model.stages import BACKWARD, OPTIMISER, TO_DEVICE, VOXELISE, stage
from .runlog import Logger, best_validation, eta_text, last_validation
from .runtime import amp_dtype, deterministic_algorithms, distributed, peak_mb, pick_device

# ------------------------------------------------------------------------------- helpers


def poly_lr(lr0: float, step: int, total: int, power: float) -> float:
    """The reference's PolyLR, stepped per iteration: lr0 (1 - step / (T + 1)) ** power (spec 10.1)."""
    return lr0 * (1 - step / (total + 1)) ** power


def should_evaluate(epoch: int, rule: tuple[tuple[int, int], ...]) -> bool:
    """Spec 10.3 for a 1-based epoch: the interval of the last rule whose start it has reached."""
    interval = 0
    for start, every in rule:
        if epoch >= start:
            interval = every
    return interval > 0 and epoch % interval == 0


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2))


def to_device(scene: dict, device: torch.device) -> dict:
    """The scene's tensors on the device (the name and other metadata stay behind)."""
    return {k: v.to(device, non_blocking=True) for k, v in scene.items() if torch.is_tensor(v)}


def host_values(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors (on the device) as Python floats, in one copy: one host synchronisation, not one per
    value. Exactly ``v.item()`` of each (float64 holds every float32 and bfloat16 value)."""
    if not values:
        return {}
    return dict(zip(values, torch.stack([v.double() for v in values.values()]).tolist(), strict=True))


class NonFiniteLoss(FloatingPointError):
    """The loss was NaN or infinite; raised before the step touched any weight."""


def load_batch(scenes: list[dict], pipeline, generator: torch.Generator, device: torch.device) -> dict:
    """Loaded scenes -> one packed batch: each scene moved to the device, augmented, then packed."""
    with stage(TO_DEVICE):
        scenes = [to_device(s, device) for s in scenes]
    with stage(VOXELISE):
        return pack_scenes([pipeline(s, generator) for s in scenes])


def make_optimizer(model: torch.nn.Module, tc, device: torch.device) -> torch.optim.AdamW:
    """AdamW (spec 10.1); on a GPU torch's fused implementation of the same update: a few kernels for
    all parameters instead of a dozen per tensor."""
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=fused)


def train_step(ddp: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               batch: dict, lr: float, amp_dtype: torch.dtype | None, tc) -> dict[str, torch.Tensor]:
    """One optimisation step (spec 10.1) at learning rate ``lr``; returns the losses (still on the device).

    ``ddp`` is the model, wrapped in DistributedDataParallel when distributed. Forward under
    autocast, the loss checked for NaN/inf (:class:`NonFiniteLoss`, weights untouched), backward
    through the loss scaler, clipping (of the unscaled gradients unless ``tc.clip_scaled_grads``),
    AdamW step.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    device_type = batch["feat"].device.type
    autocast = (torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    try:
        with autocast:
            losses = ddp(batch).losses
    except FloatingPointError as err:  # NaN/inf met inside the forward (e.g. query positions, serialize)
        raise NonFiniteLoss(str(err)) from err
    loss = losses["loss"]
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    with stage(BACKWARD):
        scaler.scale(loss).backward()
    with stage(OPTIMISER):
        if tc.clip_grad > 0:
            if not tc.clip_scaled_grads:
                scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, tc.clip_grad)
        scaler.step(optimizer)
        scaler.update()
    return {k: v.detach() for k, v in losses.items()}


# ------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: LaSSM, dataset: SceneDataset, cfg: Config, device: torch.device, rank: int = 0,
             world: int = 1) -> dict:
    """Scene by scene (batch 1, like the reference), the ScanNet-protocol AP of section 9.

    Each scene goes through :func:`lassm.inference.predict_arrays`, the path that ``predict`` and
    ``export`` take too, and is reduced at once to its association with the ground truth
    (:func:`lassm.evaluate.prediction_matches`: the predictions are not kept). Under DDP (``world`` > 1,
    every process calls this) process ``rank`` takes scenes rank, rank + world, ... with rank 0's model
    (BatchNorm statistics broadcast first: each process keeps its own while training), the associations
    (a few kB a scene) are gathered to every process and scored in scene order: the metrics of one
    process validating every scene, bit for bit. ``seconds_per_scene``: the validation's wall time per scene.
    """
    count = len(dataset.scenes)
    if cfg.train.val_max_scenes:
        count = min(count, cfg.train.val_max_scenes)
    if world > 1:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)
    was_training = model.training
    started = time.perf_counter()
    mine = []  # (scene index, its association) of this process's scenes
    for i in range(rank, count, world):
        arrays = to_device(dataset[i], device)
        prediction = predict_arrays(model, cfg, arrays, device)
        labels = {"segment": arrays["segment"].cpu(), "instance": arrays["instance"].cpu()}
        mine.append((i, prediction_matches(prediction, labels, cfg.data.class_names, cfg.data.stuff_classes)))
    model.train(was_training)
    if world > 1:
        parts = [None] * world
        torch.distributed.all_gather_object(parts, mine)
        mine = [pair for part in parts for pair in part]
    matches = [m for _, m in sorted(mine, key=lambda pair: pair[0])]
    metrics = evaluate_matches(matches, cfg.data.class_names, cfg.data.stuff_classes)
    metrics["seconds_per_scene"] = (time.perf_counter() - started) / max(count, 1)  # the gather included
    return metrics


# ------------------------------------------------------------------------------- the run


def run(cfg: Config, trusted: bool = False) -> dict:
    """Train ``cfg`` to the end (or to ``train.max_steps``); returns the last validation metrics.
    trusted: unpickle ``train.init_weights`` fully (a legacy file you trust), not as data only."""
    tc = cfg.train
    rank, world, local_rank = distributed(tc.dist_backend)
    run_dir, device = Path(tc.output_root) / tc.experiment, pick_device(tc.device, local_rank)
    exact = tc.deterministic == "always" or (tc.deterministic == "cpu" and device.type == "cpu")
    finished = False
    try:
        with RunLock(run_dir, enabled=rank == 0), deterministic_algorithms(exact):  # DDP: rank 0 locks
            metrics = _run(cfg, rank, world, device, run_dir, trusted)
        finished = True
        return metrics
    finally:  # the process group's threads stop before the interpreter exits (gloo could abort a rank there)
        if world > 1 and torch.distributed.is_initialized():
            if finished:  # none tears down while another (rank 0 writing its last checkpoint) still runs
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def initialise(model: LaSSM, tc, trusted: bool = False, log=print) -> LoadReport | None:
    """Load ``tc.init_weights`` without ``tc.skip_keys`` into a new model (:func:`load_initial_weights`: any
    checkpoint layout; a missing file names where a recipe's file comes from); None when it is ""."""
    if not tc.init_weights:
        return None
    report = load_initial_weights(model, tc.init_weights, tuple(tc.skip_keys), trusted,
                                  weights_hint(tc.init_weights))
    if log is not None:
        layout = " (MinkowskiEngine layout, converted)" if report.minkowski else ""
        log(f"initialised from {tc.init_weights}{layout}: {len(report.missing)} missing, "
            f"{len(report.unexpected)} unexpected, {len(report.skipped)} skipped keys", flush=True)
    return report


def _run(cfg: Config, rank: int, world: int, device: torch.device, run_dir: Path, trusted: bool) -> dict:
    tc = cfg.train
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", cfg.to_dict())
    logger = Logger(run_dir, rank == 0)

    train_set, val_set = training_set(cfg), validation_set(cfg)
    pipeline = augment.train_pipeline(cfg.augment)

    torch.manual_seed(cfg.seed)
    model = LaSSM(cfg.model).to(device)
    optimizer = make_optimizer(model, tc, device)
    autocast_dtype = amp_dtype(tc.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)

    last, prev = run_dir / "model_last.pth", run_dir / "model_prev.pth"  # the newest state, kept one back
    resumed = tc.resume and restore([last, prev], model, optimizer, scaler, cfg.to_dict()["model"], device,
                                    tidy=rank == 0)
    state = resumed or {"epoch": 0, "step": 0, "best_ap50": -1.0}
    if not resumed:
        initialise(model, tc, trusted, log=print if rank == 0 else None)
    # Every parameter gets a gradient from every batch, a scene without ground truth too (the zero-weighted
    # terms of lassm.model.criterion; tests/model/test_lassm.py::test_every_parameter_gets_a_gradient), so
    # DDP does without the search for unused parameters (an extra traversal of the graph each step).
    # gradient_as_bucket_view: the gradients are views of the all-reduce buckets, no copy between them.
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False,
        find_unused_parameters=False, gradient_as_bucket_view=True) if world > 1 else model

    if state["step"] == 0:
        logger.log("run", 0, {"params": sum(p.numel() for p in model.parameters()), "processes": world})
    sampler = EpochBatches(len(train_set), tc, cfg.seed, rank, world)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=keep_as_list,
                                         num_workers=tc.num_workers, persistent_workers=tc.num_workers > 0)
    total = tc.epochs * sampler.steps
    metrics: dict = {}
    timed_steps, train_seconds = 0, 0.0  # this process's steps and finished epochs' time, for the ETA
    saved = time.time()  # when model_last.pth was last written (train.checkpoint_minutes), or the run began
    while state["epoch"] < tc.epochs and not (tc.max_steps and state["step"] >= tc.max_steps):
        epoch = state["epoch"]
        sampler.epoch = epoch
        ddp.train()
        sums, seen, started = {}, 0, time.time()
        mark = (started, 0)  # (time, steps of the epoch) at the last log line: step_seconds since then
        for i, scenes in enumerate(loader):
            step = state["step"]
            batch = load_batch(scenes, pipeline, step_generator(cfg.seed, epoch, i, rank, device), device)
            lr = poly_lr(tc.lr, step, total, tc.poly_power)
            try:
                losses = train_step(ddp, optimizer, scaler, batch, lr, autocast_dtype, tc)
            except NonFiniteLoss as err:
                raise NonFiniteLoss(f"{err} at step {step} (epoch {epoch + 1}); the last good "
                                    f"checkpoint is {last if last.is_file() else 'none yet'}") from None
            state["step"] = step + 1
            for k, v in losses.items():  # summed on the device (float64, as the host's floats were): no sync
                sums[k] = sums.get(k, 0.0) + v.double()
            seen += 1
            timed_steps += 1
            if state["step"] % tc.log_every == 0:
                values = host_values(losses)  # waits for the step, so the time below covers it
                now = time.time()
                step_seconds, mark = (now - mark[0]) / (seen - mark[1]), (now, seen)
                left = min(total, tc.max_steps or total) - state["step"]  # validation time not included
                logger.log("train", state["step"], {**values, "lr": lr, "step_seconds": step_seconds},
                           note=eta_text(left * (train_seconds + now - started) / timed_steps))
            if tc.max_steps and state["step"] >= tc.max_steps:
                break
        state["epoch"] = epoch + 1
        means = {k: v / max(seen, 1) for k, v in host_values(sums).items()}
        elapsed = time.time() - started
        train_seconds += elapsed
        logger.log("epoch", state["step"], {**means, "epoch": state["epoch"], "seconds": elapsed,
                                            "peak_mb": peak_mb(device)})
        finished = state["epoch"] >= tc.epochs or bool(tc.max_steps and state["step"] >= tc.max_steps)
        validated = tc.validation and (should_evaluate(state["epoch"], tuple(tc.eval_interval)) or finished)
        if validated:  # every process, each its share of the scenes
            metrics = validate(model, val_set, cfg, device, rank, world)
            logger.log("val", state["step"], {"AP": metrics["AP"], "AP50": metrics["AP50"],
                                              "AP25": metrics["AP25"], "epoch": state["epoch"],
                                              "seconds_per_scene": metrics["seconds_per_scene"]})
            if metrics["AP50"] >= state["best_ap50"]:  # a tie goes to the later, longer-trained model
                state["best_ap50"] = float(metrics["AP50"])  # plain, like all we save
                if rank == 0:
                    best = {"model": model.state_dict(), "config": cfg.to_dict(), "state": dict(state),
                            "metrics": plain(metrics)}
                    save_checkpoint(best, run_dir / "model_best.pth")
        # Rank 0 alone decides by its clock, and no collective depends on it: the other processes go on
        # (the next step's all-reduce waits for rank 0 if it is still writing).
        if rank == 0 and (validated or finished or time.time() - saved >= 60 * tc.checkpoint_minutes):
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict(), "state": dict(state),
                             "config": cfg.to_dict()}, last, previous=prev)
            saved = time.time()
    logger.close()
    return metrics


def launch(cfg: Config, gpus: int = 1, log=print, trusted: bool = False) -> dict:
    """Train ``cfg`` on ``gpus`` GPUs of this machine: in this process for one, else one process per GPU
    under ``torchrun`` (DistributedDataParallel). Returns the run's last validation record, or the
    metrics of the in-process run ({} with ``train.validation`` off). ``trusted``: as for :func:`run`.

    The multi-GPU run reads the config from ``<run>/launch_config.json`` (written atomically) and its
    output is passed line by line to ``log``; a failing run raises RuntimeError with its exit code.
    """
    if not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus: expected a positive integer, got {gpus!r}")
    if gpus == 1:
        return run(cfg, trusted)
    import subprocess

    run_dir = Path(cfg.train.output_root) / cfg.train.experiment
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "launch_config.json"
    _write_json(config_file, cfg.to_dict())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "lassm.train", "--config", str(config_file)] + ["--trust-checkpoint"] * trusted
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log(line.rstrip("\n"))
    if proc.returncode:
        raise RuntimeError(f"torchrun with {gpus} processes exited with {proc.returncode}; "
                           f"see the output above")
    return last_validation(run_dir) if cfg.train.validation else {}


# ------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lassm.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="synthetic", help="named preset (synthetic, scannet, ...)")
    source.add_argument("--config", help="a config.json written by an earlier run")
    parser.add_argument("--variant", default=None,
                        help="released config of the preset: -3 or -0 (decoder), for scannetpp also -3-sc or "
                             "-0-sc (trained from scratch); sets the model, augmentation and training recipe")
    parser.add_argument("--summary", metavar="RUN_DIR", help="print a run's last validation AP and exit")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides, e.g. train.epochs=10 model.decoder.t_layer=0")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle train.init_weights fully (weights_only=False): only a file you trust")
    args = parser.parse_args(dash_values(argv))
    return run_command(lambda: _command(args))


def _command(args) -> int:
    if args.summary:
        v = last_validation(args.summary)
        print(f"{args.summary}: epoch {v['epoch']:.0f}, validation AP {v['AP']:.3f} AP50 {v['AP50']:.3f} "
              f"AP25 {v['AP25']:.3f}")
        b = best_validation(args.summary)
        print(f"best (model_best.pth): epoch {b['epoch']:.0f}, validation AP {b['AP']:.3f} "
              f"AP50 {b['AP50']:.3f} AP25 {b['AP25']:.3f}")
        view = Path(args.summary) / "val_view.html"  # written by notebooks/03_train.ipynb
        if view.is_file():
            print(f"one validation scene, ground truth | prediction: {view.resolve()}")
        return 0
    cfg = _read_config(args.config) if args.config else preset(
        args.preset, **({"variant": args.variant} if args.variant else {}))
    cfg = apply_overrides(cfg, args.set)
    metrics = run(cfg, trusted=args.trust_checkpoint)
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        print(f"validation AP {metrics['AP']:.3f} AP50 {metrics['AP50']:.3f} AP25 {metrics['AP25']:.3f}")
    return 0


def _read_config(path: str) -> Config:
    """--config: a run's config.json; ValueError naming the file when it is not one."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config: {file} is not a file; expected a config.json written by a run")
    try:
        return Config.from_dict(json.loads(file.read_text()))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config: {file} is not valid JSON ({err})") from None
    except ValueError as err:
        raise ValueError(f"--config: {file}: {err}") from None

if __name__ == "__main__":
    sys.exit(main())
