"""The training engine on CPU: a smoke run, exact resume, clear failures."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from lassm import config, runlog, train
from lassm.data.prepare import prepare


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    prepare("synthetic", root / "raw", root / "out", num_rooms=3, room_size="small")  # 2 train, 1 val
    return root / "out"


def tiny(data_root, out, experiment="run", **train_fields) -> config.Config:
    cfg = config.synthetic(root=str(data_root))
    cfg.model.backbone.sparse_backend = "torch"
    cfg.model.decoder.d_model, cfg.model.decoder.ffn_hidden, cfg.model.decoder.heads = 64, 128, 4
    cfg.model.decoder.num_query = 16
    fields = dict(experiment=experiment, output_root=str(out), epochs=3, batch_size=1, log_every=1,
                  num_workers=0, device="cpu", eval_interval=((1, 2),), lr=1e-3,
                  checkpoint_minutes=0)  # model_last.pth every epoch, as the resume tests expect
    fields.update(train_fields)
    for k, v in fields.items():
        setattr(cfg.train, k, v)
    return cfg


def losses(run_dir) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x["loss"] for x in lines if x["kind"] == "train"]


def test_smoke_run_writes_config_metrics_and_checkpoints(data_root, tmp_path, capsys):
    metrics = train.run(tiny(data_root, tmp_path))
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[train step")]
    assert len(printed) == 6 and all(re.search(r"  eta (\d+m\d\ds|\d+s)$", line) for line in printed)
    assert printed[-1].endswith("eta 0s")  # nothing left after the last step
    run = tmp_path / "run"
    assert {"AP", "AP50", "AP25"} <= set(metrics)
    assert (run / "model_last.pth").is_file() and (run / "model_best.pth").is_file()
    assert config.Config.from_dict(json.loads((run / "config.json").read_text())).train.epochs == 3
    assert len(losses(run)) == 6  # 2 training scenes, batch 1, 3 epochs
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("val") == 2  # epoch 2 (every 2) and the last epoch
    (start,) = [r for r in records if r["kind"] == "run"]  # what the ablation table reads
    model = train.LaSSM(tiny(data_root, tmp_path).model)
    assert start["params"] == sum(p.numel() for p in model.parameters())
    assert all(r["peak_mb"] > 0 for r in records if r["kind"] == "epoch")
    assert all(0 < r["seconds_per_scene"] < 60 for r in records if r["kind"] == "val")


@pytest.fixture
def one_thread():
    # With several threads, CPU GEMM/reduction kernels split work by memory alignment, so a fresh
    # process (other allocations) can differ in the last bits; one thread makes runs bit-exact.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_interrupted_run_resumes_exactly(data_root, tmp_path, one_thread):
    train.run(tiny(data_root, tmp_path, "whole"))
    train.run(tiny(data_root, tmp_path, "parts", max_steps=2))  # "killed" after the first epoch
    assert len(losses(tmp_path / "parts")) == 2
    train.run(tiny(data_root, tmp_path, "parts"))  # the same command again resumes
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")  # bit-exact on CPU
    whole = torch.load(tmp_path / "whole" / "model_last.pth", weights_only=False)["model"]
    parts = torch.load(tmp_path / "parts" / "model_last.pth", weights_only=False)["model"]
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


@pytest.mark.parametrize("setting", ["cpu", "always"])
def test_cpu_runs_repeat_bit_for_bit_with_two_threads(data_root, tmp_path, setting):
    """train.deterministic: the same seed on two threads gives the same losses and weights (the demo's
    numbers repeat), and the process's own deterministic setting is back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for name in ("a", "b"):
            train.run(tiny(data_root, tmp_path, name, deterministic=setting))
            assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    a = torch.load(tmp_path / "a" / "model_last.pth", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "model_last.pth", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="train.deterministic"):
        tiny(data_root, tmp_path, deterministic="sometimes").train.__post_init__()


def test_model_last_waits_for_checkpoint_minutes_and_resume_stays_exact(data_root, tmp_path, monkeypatch,
                                                                        one_thread):
    """train.checkpoint_minutes: epochs of a few steps do not each write model_last.pth; without validation
    it is written at the end of the run only, and a rerun resumes from there exactly."""
    written = []
    real = train.save_checkpoint

    def recording(obj, path, previous=None):
        written.append((path.name, obj["state"]["epoch"]))
        return real(obj, path, previous)

    monkeypatch.setattr(train, "save_checkpoint", recording)
    rare = dict(checkpoint_minutes=1e6, validation=False)
    train.run(tiny(data_root, tmp_path, "whole", **rare))  # 3 epochs of 2 steps
    assert written == [("model_last.pth", 3)]  # no model_best.pth: nothing was validated
    assert not [r for r in runlog.read_metrics(tmp_path / "whole") if r["kind"] == "val"]
    written.clear()
    train.run(tiny(data_root, tmp_path, "parts", max_steps=4, **rare))  # stopped after epoch 2: written then
    assert written == [("model_last.pth", 2)] and not (tmp_path / "parts" / "model_prev.pth").exists()
    train.run(tiny(data_root, tmp_path, "parts", **rare))  # resumes from epoch 2
    assert written[1:] == [("model_last.pth", 3)]
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")  # bit-exact on CPU
    whole = torch.load(tmp_path / "whole" / "model_last.pth", weights_only=False)["model"]
    parts = torch.load(tmp_path / "parts" / "model_last.pth", weights_only=False)["model"]
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


def test_resume_refuses_another_model(data_root, tmp_path):
    train.run(tiny(data_root, tmp_path, max_steps=1))
    other = tiny(data_root, tmp_path)
    other.model.decoder.t_layer = 0
    with pytest.raises(ValueError, match="different model config"):
        train.run(other)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = tiny(data_root, tmp_path, epochs=2)
    real = train.LaSSM.forward
    calls = {"n": 0}

    def poisoned(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:  # the first step of the second epoch
            out.losses["loss"] = out.losses["loss"] * float("nan")
        return out

    monkeypatch.setattr(train.LaSSM, "forward", poisoned)
    with pytest.raises(FloatingPointError, match="at step 2 \\(epoch 2\\)"):
        train.run(cfg)
    kept = torch.load(tmp_path / "run" / "model_last.pth", weights_only=False)
    assert kept["state"]["epoch"] == 1 and kept["state"]["step"] == 2


def test_bad_inputs_are_named(data_root, tmp_path):
    with pytest.raises(ValueError, match="unknown field 'epoch'"):
        config.apply_overrides(config.synthetic(), ["train.epoch=3"])
    assert train.main(["--preset", "synthetic", "--set", "train.epoch=3"]) == 2  # one line, no traceback
    cfg = tiny(tmp_path / "nowhere", tmp_path)
    with pytest.raises(Exception, match="does not exist"):
        train.run(cfg)
    mismatch = tiny(data_root, tmp_path)
    mismatch.data.segment_key = "segment"  # e.g. the ScanNet++ preset on ScanNet-format data
    with pytest.raises(Exception, match="prepared for another dataset"):
        train.run(mismatch)
    assert train.should_evaluate(8, ((1, 8), (496, 1))) and not train.should_evaluate(9, ((1, 8), (496, 1)))
    assert train.should_evaluate(497, ((1, 8), (496, 1)))
    assert train.poly_lr(1.0, 0, 10, 0.9) == 1.0
    assert train.poly_lr(1.0, 10, 10, 0.9) == pytest.approx((1 / 11) ** 0.9)


def test_best_validation_is_the_one_model_best_keeps(tmp_path):
    records = [{"kind": "val", "step": s, "AP": 0.1, "AP50": ap50, "AP25": 0.3, "epoch": e}
               for e, (s, ap50) in enumerate([(10, 0.2), (20, 0.5), (30, 0.5), (40, 0.1)], 1)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert runlog.best_validation(tmp_path)["step"] == 30  # the latest of equal AP50s
    assert runlog.last_validation(tmp_path)["step"] == 40


def test_eta_text():
    assert [runlog.eta_text(s) for s in (0, 12.4, 65, 3600 + 125, -3)] == \
        ["eta 0s", "eta 12s", "eta 1m05s", "eta 1h02m", "eta 0s"]


def test_summary_prints_the_last_validation(data_root, tmp_path, capsys):
    train.run(tiny(data_root, tmp_path, max_steps=1))
    assert train.main(["--summary", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "validation AP" in out and "best (model_best.pth): epoch" in out
    with pytest.raises(ValueError, match="no validation results"):
        runlog.last_validation(tmp_path)


@pytest.fixture(scope="module")
def ddp_run(data_root, tmp_path_factory):
    """One DistributedDataParallel run on the CPU (gloo): 2 processes, batch 1 each, 2 epochs, validation
    after the second on 3 scenes (copies of the 2 training rooms and the validation room): 2 and 1 each."""
    import os
    import shutil
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("ddp")
    scenes = out / "data" / "val3"
    for scene in sorted((data_root / "train").iterdir()) + sorted((data_root / "val").iterdir()):
        shutil.copytree(scene, scenes / scene.name)
        # one instance of all object points, which the untrained model's masks (lr 1e-12 below: the run
        # hardly moves the weights) overlap at IoU 0.5-0.7, so that the AP is not simply 0 (0.37 when written)
        instance = np.load(scenes / scene.name / "instance.npy")
        np.save(scenes / scene.name / "instance.npy", np.where(instance >= 0, 0, -1).astype(instance.dtype))
    cfg = tiny(data_root, out, experiment="ddp", epochs=2, eval_interval=((1, 2),), lr=1e-12)
    cfg.data.val_root, cfg.data.val_split = str(out / "data"), "val3"
    path = out / "ddp.json"
    path.write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "lassm.train", "--config", str(path)]
    proc = subprocess.run(command,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, out / "ddp"


def test_torchrun_two_processes_share_each_step(ddp_run):
    """DistributedDataParallel on the CPU (gloo): 2 processes, batch 1 each, split the 2 training scenes."""
    _, run = ddp_run
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # one step per epoch: the global batch of 2 (1 per process) covers both training scenes
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [2]
    ckpt = torch.load(run / "model_last.pth", weights_only=False)
    assert ckpt["state"]["step"] == 2 and ckpt["state"]["epoch"] == 2


def test_ddp_validation_equals_one_process_validating_every_scene(ddp_run, one_thread):
    """Each process validated its share of the scenes (0 and 2, or 1) and the gathered associations were
    scored in scene order: the metrics are those of one process validating the saved model on all three."""
    from lassm.runtime import deterministic_algorithms

    cfg, run = ddp_run
    best = torch.load(run / "model_best.pth", weights_only=True)  # rank 0's model and its full metrics
    model = train.LaSSM(cfg.model)
    model.load_state_dict(best["model"])
    dataset = train.validation_set(cfg)
    assert len(dataset.scenes) == 3
    with deterministic_algorithms(True):  # as the run's CPU processes
        alone = train.validate(model, dataset, cfg, torch.device("cpu"))
    for key in ("AP", "AP50", "AP25", "Prec50", "Rec50"):
        assert repr(best["metrics"][key]) == repr(alone[key]), key  # exact (repr: NaN equals NaN)
    assert repr(best["metrics"]["per_class"]) == repr(alone["per_class"])
    (logged,) = [r for r in runlog.read_metrics(run) if r["kind"] == "val"]
    assert logged["AP50"] == round(alone["AP50"], 6)


def test_extra_training_folders_join_the_split_and_validation_can_live_elsewhere(data_root, tmp_path):
    """data.extra_train adds scene folders (each repeated extra_train_loop times); data.val_root moves
    validation to another processed root (sim + real training: synthetic frames, real val scans)."""
    cfg = tiny(data_root, tmp_path)
    alone = len(train.training_set(cfg))
    cfg.data.extra_train, cfg.data.extra_train_loop = (str(data_root / "val"),), 3
    mixed = train.training_set(cfg)
    val_scenes = len(train.validation_set(cfg).scenes)
    assert len(mixed) == alone + 3 * val_scenes
    names = {mixed[i]["name"] for i in range(len(mixed))}
    assert {p.name for p in (data_root / "val").iterdir()} <= names
    cfg.data.val_root, cfg.data.val_split = str(data_root), "train"
    assert len(train.validation_set(cfg).scenes) == alone
    cfg.data.val_root = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        train.validation_set(cfg)


def test_steps_per_epoch_caps_an_epoch(data_root, tmp_path):
    """train.steps_per_epoch: an epoch of a large set is a random part of it (validation per epoch)."""
    cfg = tiny(data_root, tmp_path, experiment="capped", epochs=2, eval_interval=((1, 1),), steps_per_epoch=1)
    cfg.data.extra_train, cfg.data.extra_train_loop = (str(data_root / "train"),), 2  # 6 scenes: 6 steps
    train.run(cfg)
    records = [json.loads(x) for x in (tmp_path / "capped" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [1, 2]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        config.apply_overrides(cfg, {"train.steps_per_epoch": -1})


# ------------------------------------------------------------------------------- robustness (issue 19)


def test_diverging_run_stops_as_non_finite_and_releases_the_lock(data_root, tmp_path):
    """lr 1e9: positions blow up inside the decoder; the run stops with the step, not an IndexError."""
    with pytest.raises(train.NonFiniteLoss, match="at step 1 \\(epoch 1\\); the last good checkpoint is no"):
        train.run(tiny(data_root, tmp_path, lr=1e9))
    assert not (tmp_path / "run" / "train.lock").exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30])
def test_serialization_refuses_positions_without_a_cell(bad):
    from lassm.model.serialize import batched_orders, serialization_order, table_only

    pos = torch.rand(2, 5, 3) * 4
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[1, 4] = False
    padded = pos.clone()
    padded[1, 4] = bad  # padding is never encoded
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batched_orders(padded, valid, ["hilbert"]),
                                                        batched_orders(pos, valid, ["hilbert"]), strict=True))
    pos[0, 2, 1] = bad
    with pytest.raises(FloatingPointError, match="NaN or inf|bits per axis"):
        batched_orders(pos, valid, ["hilbert", "z-trans"])
    with pytest.raises(ValueError):  # still the ValueError it was for a bad grid_size
        serialization_order(pos[0], "hilbert")
    with table_only() as flags:  # the CUDA-graph path cannot raise: it flags for the eager rerun
        batched_orders(pos, valid, ["hilbert"])
    assert bool(torch.stack(flags).any())


def test_our_checkpoints_hold_plain_data(data_root, tmp_path, monkeypatch):
    from lassm.model.checkpoint import plain

    per_class = {"a": {"AP_per_overlap": {np.float64(0.25): np.float32(1)}}}
    metrics = {"AP": np.float64(0.5), "per_class": per_class, "overlaps": list(np.arange(2) / 2),
               "t": torch.tensor(2.0)}
    out = plain(metrics)
    assert type(out["AP"]) is float and type(out["overlaps"][1]) is float and out["t"] == 2.0
    assert type(next(iter(out["per_class"]["a"]["AP_per_overlap"]))) is float
    real = train.validate

    def numpy_metrics(*args):  # evaluate_predictions may hand back numpy numbers
        found = real(*args)
        return {**found, "AP50": np.float64(found["AP50"]), "per_class": per_class}

    monkeypatch.setattr(train, "validate", numpy_metrics)
    train.run(tiny(data_root, tmp_path, epochs=2))
    for name in ("model_best.pth", "model_last.pth", "model_prev.pth"):
        blob = torch.load(tmp_path / "run" / name, weights_only=True)  # torch's own allowlist only
        assert "model" in blob
    assert blob["state"]["epoch"] == 1  # model_prev.pth: the epoch before the last


def test_a_locked_folder_refuses_a_second_run_and_a_stale_lock_is_taken_over(data_root, tmp_path, monkeypatch,
                                                                           capsys):
    import os
    import socket
    import subprocess
    import sys

    lock = tmp_path / "run" / "train.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # alive: this process
    with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
        train.run(tiny(data_root, tmp_path, max_steps=1))
    assert lock.exists()  # not ours to remove
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True)  # a pid that has exited
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    seen = []
    real = train.validate

    def watching(*args):
        seen.append(json.loads(lock.read_text()))
        return real(*args)

    monkeypatch.setattr(train, "validate", watching)
    train.run(tiny(data_root, tmp_path, max_steps=1))
    assert f"stale lock of pid {int(gone.stdout)}" in capsys.readouterr().err
    assert seen == [{"pid": os.getpid(), "host": socket.gethostname()}]  # held during the run
    assert not lock.exists()  # released at the end


def test_resume_falls_back_to_the_previous_checkpoint(data_root, tmp_path, capsys):
    from lassm.data.io import DataError

    train.run(tiny(data_root, tmp_path, max_steps=4))  # epochs 1 and 2: model_prev.pth is epoch 1
    run = tmp_path / "run"
    last = run / "model_last.pth"
    last.write_bytes(last.read_bytes()[:200])  # a crash mid-write on a file system without atomic rename
    train.run(tiny(data_root, tmp_path, max_steps=6))
    err = capsys.readouterr().err
    assert "model_last.pth: not a readable torch checkpoint" in err and "trying the previous" in err
    assert [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "train"] == [1, 2, 3, 4, 3, 4, 5, 6]  # epoch 2 repeated from model_prev.pth
    assert (run / "model_last.pth.unreadable").is_file()
    assert torch.load(last, weights_only=True)["state"]["step"] == 6
    for name in ("model_last.pth", "model_prev.pth"):
        (run / name).write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="model_last.pth.*model_prev.pth.*train.resume=False"):
        train.run(tiny(data_root, tmp_path, max_steps=8))


def test_model_best_keeps_the_latest_of_equal_scores(data_root, tmp_path):
    """An untrained run scores AP50 0 at every validation: model_best must be the last of them, not the
    first (the notebooks open model_best by default)."""
    cfg = tiny(data_root, tmp_path, experiment="ties", epochs=2, eval_interval=((1, 1),), lr=1e-12)
    train.run(cfg)
    records = [json.loads(x) for x in (tmp_path / "ties" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert len(val) == 2 and val[0]["AP50"] == val[1]["AP50"]  # lr 1e-12: the weights hardly move
    best = torch.load(tmp_path / "ties" / "model_best.pth", weights_only=True)
    assert best["state"]["epoch"] == 2


def test_epoch_steps_give_the_reference_iteration_counts():
    """Spec 10.4: the whole run's iterations on 4 GPUs x 3 scenes, drop_last (these set the poly decay)."""
    cases = {("scannet", "-3", 1201): 51_200, ("scannet200", "-3", 1201): 51_000,
             ("scannetpp", "-3", 2908): 123_904, ("scannetpp", "-3-sc", 2908): 193_800}
    for (name, variant, scenes), total in cases.items():
        tc = config.preset(name, variant=variant).train
        assert tc.epochs * train.epoch_steps(scenes, tc, world=4) == total, (name, variant)
    tc = config.scannetpp(variant="-3-sc").train
    tc.steps_per_epoch = 50
    assert train.epoch_steps(2908, tc, world=4) == 50


def test_command_line_trains_the_released_scratch_recipe(data_root, tmp_path):
    """``--variant -3-sc`` (a value argparse would take for an option) selects the -sc recipe: lr 1e-4 and
    epochs of 8 passes, which the poly decay's length shows; config.json records it."""
    tiny_model = ["model.backbone.sparse_backend=torch", "model.decoder.d_model=64",
                  "model.decoder.ffn_hidden=128", "model.decoder.heads=4", "model.decoder.num_query=16"]
    # the synthetic rooms' labels (0..19) read as ScanNet++ classes: enough to train two steps
    data = [f"data.root={data_root}", "data.train_split=train", "data.segment_key=segment20"]
    run = [f"train.output_root={tmp_path}", "train.epochs=1", "train.max_steps=2", "train.batch_size=1",
           "train.num_workers=0", "train.device=cpu", "train.log_every=1", "train.val_max_scenes=1"]
    assert train.main(["--preset", "scannetpp", "--variant", "-3-sc", "--set", *tiny_model, *data, *run]) == 0
    folder = tmp_path / "scannetpp-3-sc"  # the recipe's run folder
    saved = json.loads((folder / "config.json").read_text())
    assert saved["release"] == "scannetpp/insseg-lassm-spunet-v2-3-sc"
    assert saved["model"]["decoder"]["t_layer"] == 3
    t = saved["train"]
    assert (t["lr"], t["loop"], t["eval_interval"], t["init_weights"]) == (1e-4, 8, [[1, 1]], "")
    assert t["epochs"] == 1  # --set wins over the recipe
    records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    total = 1 * 8 * 2  # 1 epoch of 8 passes over the 2 training rooms, batch 1 (cut short by max_steps)
    # metrics.jsonl keeps 4 digits; one pass an epoch would give 6.9e-5 at step 1, four passes 9.0e-5
    assert lrs == pytest.approx([1e-4, 1e-4 * (1 - 1 / (total + 1)) ** 0.9], rel=1e-2)
