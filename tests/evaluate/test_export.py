"""Exporting a split to the benchmark layout: the file route scores exactly like the in-memory evaluator."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lassm import config
from lassm.data.prepare import prepare
from lassm.evaluate import export
from lassm.evaluate.ap import evaluate_predictions
from lassm.evaluate.formats import evaluate_benchmark, read_ints
from lassm.inference import gt_instances
from lassm.model import LaSSM, Prediction


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    prepare("synthetic", root / "raw", root / "out", num_rooms=3, room_size="small")  # 2 train, 1 val
    return root / "out"


def tiny(data_root) -> config.Config:
    cfg = config.synthetic(root=str(data_root))
    cfg.model.backbone.sparse_backend = "torch"
    cfg.model.decoder.d_model, cfg.model.decoder.ffn_hidden, cfg.model.decoder.heads = 64, 128, 4
    cfg.model.decoder.num_query = 16
    return cfg


def noisy_prediction(arrays: dict, cfg: config.Config, rng: np.random.Generator) -> Prediction:
    """Predictions made from the GT: eroded masks, some with a wrong class, duplicates, and clutter."""
    label, instance = (t.numpy() for t in gt_instances(arrays, cfg))
    n, classes_count = len(label), len(cfg.data.instance_class_names)
    masks, classes = [], []
    for g in range(instance.max() + 1):
        member = instance == g
        cls = int(label[member][0])
        keep = member & (rng.random(n) > rng.uniform(0, 0.6))  # erode by 0-60 %
        masks.append(keep)
        classes.append(cls if rng.random() > 0.2 else int(rng.integers(classes_count)))
        if rng.random() < 0.3:  # a duplicate
            masks.append(member & (rng.random(n) > 0.3))
            classes.append(cls)
    for _ in range(3):  # clutter: random blobs around random points
        centre = arrays["coord"][rng.integers(n)]
        masks.append(np.linalg.norm(arrays["coord"] - centre, axis=1) < rng.uniform(0.2, 0.8))
        classes.append(int(rng.integers(classes_count)))
    scores = rng.random(len(masks))
    order = np.argsort(-scores, kind="stable")
    return Prediction(scores=torch.as_tensor(scores[order], dtype=torch.float32),
                      classes=torch.as_tensor(np.asarray(classes)[order]),
                      masks=torch.as_tensor(np.stack(masks)[order]),
                      queries=torch.arange(len(masks)))


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_benchmark_files_score_like_the_in_memory_evaluator(data_root, tmp_path):
    cfg = tiny(data_root)
    rng = np.random.default_rng(0)
    preds, scenes = [], []
    for split in ("train", "val"):
        dataset = export.split_dataset(cfg, split)
        for i in range(len(dataset.scenes)):
            arrays = export.scene_arrays(dataset, i)
            pred = noisy_prediction(arrays, cfg, rng)
            export.write_scene(tmp_path, dataset.name(i), arrays, pred, cfg)
            preds.append(pred)
            scenes.append({"segment": arrays["segment"], "instance": arrays["instance"]})
    memory = evaluate_predictions(preds, scenes, cfg.data.class_names, cfg.data.stuff_classes)
    files = evaluate_benchmark(tmp_path / "predictions", tmp_path / "gt", "scannet20")
    assert 0.1 < memory["AP50"] < 0.99  # the noise makes a non-trivial case
    assert files["num_scenes"] == 3
    for ours, theirs in (("AP", "ap"), ("AP50", "ap50"), ("AP25", "ap25")):
        assert same(memory[ours], files[theirs])
        for name, row in memory["per_class"].items():
            assert same(row[ours], files["classes"][name][theirs]), name


def test_gt_file_holds_official_ids(data_root, tmp_path):
    cfg = tiny(data_root)
    dataset = export.split_dataset(cfg, "val")
    arrays = export.scene_arrays(dataset, 0)
    pred = noisy_prediction(arrays, cfg, np.random.default_rng(1))
    export.write_scene(tmp_path, "room", arrays, pred, cfg)
    gt = read_ints(tmp_path / "gt" / "room.txt")
    assert len(gt) == len(arrays["coord"])
    chair = arrays["segment"] == cfg.data.class_names.index("chair")
    things = (arrays["instance"] >= 0) & (arrays["segment"] >= 2)
    assert (gt[chair & things] // 1000 == 5).all()  # ScanNet's chair is label id 5
    assert (gt[arrays["segment"] <= 1] == 0).all()  # wall and floor: void
    lines = (tmp_path / "predictions" / "room.txt").read_text().splitlines()
    assert len(lines) == len(pred.scores)
    first = lines[0].split(" ")
    assert int(first[1]) == export.instance_label_ids(cfg)[int(pred.classes[0])]


def test_export_command_writes_resumes_and_matches_evaluate_split(data_root, tmp_path, capsys):
    cfg = tiny(data_root)
    torch.manual_seed(0)
    model = LaSSM(cfg.model).eval()
    checkpoint = tmp_path / "model.pth"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, checkpoint)
    out = tmp_path / "bench"
    assert export.main([str(checkpoint), "--split", "val", "--out", str(out), "--device", "cpu"]) == 0
    assert "1 scenes written, 0 already there" in capsys.readouterr().out
    assert export.main([str(checkpoint), "--split", "val", "--out", str(out), "--device", "cpu"]) == 0
    assert "0 scenes written, 1 already there" in capsys.readouterr().out
    files = evaluate_benchmark(out / "predictions", out / "gt", "scannet20")
    memory = export.evaluate_split(model, cfg, "val", "cpu")
    val_names = [p.name for p in export.split_dataset(cfg, "val").scenes]
    assert [r["scene"] for r in memory["per_scene"]] == val_names
    (row,) = memory["per_scene"]  # one val scene: its own score is the split's
    assert same(row["AP50"], memory["overall"]["AP50"]) and same(row["AP"], memory["overall"]["AP"])
    for ours, theirs in (("AP", "ap"), ("AP50", "ap50"), ("AP25", "ap25")):
        assert same(memory["overall"][ours], files[theirs])
    assert export.main([str(checkpoint), "--split", "nope", "--out", str(out), "--device", "cpu"]) == 2
    assert "nope does not exist" in capsys.readouterr().err


def test_label_id_tables_cover_every_preset():
    for name in ("synthetic", "scannet", "scannet200", "scannetpp", "mosd"):
        cfg = config.preset(name)
        ids = export.semantic_label_ids(cfg)
        assert len(ids) == len(cfg.data.class_names) and len(set(ids.tolist())) == len(ids)
        assert len(export.instance_label_ids(cfg)) == len(cfg.data.instance_class_names)
    cfg = config.preset("scannet200")
    assert export.semantic_label_ids(cfg)[cfg.data.class_names.index("floor")] == 3  # ScanNet200's floor


def test_both_export_commands_and_the_package_names():
    import lassm.evaluate

    assert lassm.evaluate.export_split is export.export_split and lassm.evaluate.main is not export.main
    for module in ("lassm.export", "lassm.evaluate.export"):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "--max-scenes" in proc.stdout, proc.stderr
        assert "Warning" not in proc.stderr, proc.stderr  # runpy's "found in sys.modules" warning


def test_overwrite_leaves_no_stale_masks(data_root, tmp_path):
    cfg = tiny(data_root)
    torch.manual_seed(0)
    model = LaSSM(cfg.model).eval()
    out = tmp_path / "bench"
    (name,) = export.export_split(model, cfg, "val", out, "cpu")["written"]
    masks = out / "predictions" / "predicted_masks"
    (masks / f"{name}_999.txt").write_text("1\n")  # as left by an earlier export with more masks
    (masks / f"{name}_001_000.txt").write_text("1\n")  # another scene's ("<name>_001") mask
    assert export.export_split(model, cfg, "val", out, "cpu")["skipped"] == [name]
    assert (masks / f"{name}_999.txt").is_file()  # a skipped scene is left alone
    assert export.export_split(model, cfg, "val", out, "cpu", overwrite=True)["written"] == [name]
    listed = {line.split(" ")[0] for line in (out / "predictions" / f"{name}.txt").read_text().splitlines()}
    own = {f"predicted_masks/{p.name}" for p in masks.iterdir() if p.name != f"{name}_001_000.txt"}
    assert own == listed and (masks / f"{name}_001_000.txt").is_file()
