"""The benchmark command runs end to end on a tiny input and prints its table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lassm import bench
from lassm.data.synthetic import generate_room


def test_backbone_benchmark_prints_rows(capsys):
    room = generate_room(0, "small")
    scene = {"coord": room.mesh.vertices.astype(np.float32), "color": room.mesh.colors}
    rows = bench.bench_backbone("cpu", backends=("torch",), precisions=("fp32",), repeat=1, scenes=[scene])
    printed = capsys.readouterr().out
    assert len(rows) == 1 and rows[0]["voxels"] > 1000
    assert rows[0]["forward_ms"] > 0 and rows[0]["train_ms"] > 0
    assert "torch" in printed and f"{rows[0]['voxels']}" in printed


def test_voxel_batch_packs_scenes_with_offsets():
    scenes = [{"coord": np.random.default_rng(i).random((500, 3), dtype=np.float32),
               "color": np.zeros((500, 3), np.uint8)} for i in range(2)]
    batch = bench.voxel_batch(scenes, "cpu")
    assert batch["feat"].shape[1] == 6 and batch["offset"].tolist()[-1] == len(batch["grid_coord"])
    assert (batch["feat"][:, :3] == -1).all()  # black -> -1 after the [-1, 1] colour scaling


def _expected_queries(num_superpoints: int, num_query: int, alpha: float = 0.8) -> int:
    """Spec 6.2 by hand: FPS to num_query once floor(alpha S) > num_query, else every superpoint."""
    return num_query if int(alpha * num_superpoints) > num_query else num_superpoints


def test_decoder_benchmark_rows_queries_and_table(capsys):
    rows = bench.bench_decoder("cpu", superpoints=(600, 60), variants=(3, 0), precisions=("fp32",),
                               repeat=1, num_query=50, warmup=1)
    printed = capsys.readouterr().out
    order = [(r["variant"], r["superpoints"]) for r in rows]
    assert order == [("-3", 600), ("-3", 60), ("-0", 600), ("-0", 60)]
    for row in rows:
        assert row["queries"] == _expected_queries(row["superpoints"], 50)
        assert row["forward_ms"] > 0 and row["train_ms"] > 0 and row["scan"] == "torch"
        assert bench._format_decoder_row(row) in printed
    assert {r["queries"] for r in rows} == {50, 60}


def test_decoder_command_line_writes_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    bench.main(["decoder", "--device", "cpu", "--superpoints", "60", "--queries", "50", "--variants=-0",
                "--precisions", "amp", "--repeat", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "SSD scan: PyTorch chunked scan" in printed and "causal-conv1d: no" in printed
    assert bench.DECODER_HEADER in printed
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and rows[0]["variant"] == "-0" and rows[0]["precision"] == "amp"
    assert rows[0]["queries"] == 60


def test_parse_variants_accepts_every_spelling():
    assert bench.parse_variants(["-3,-0"]) == (3, 0)
    assert bench.parse_variants(["-3", "-0"]) == (3, 0)
    assert bench.parse_variants(["t3", "t0", "6"]) == (3, 0, 6)
    for bad in (["x3"], ["--3"], [""]):
        with pytest.raises(ValueError, match="variants"):
            bench.parse_variants(bad)


def test_decoder_inputs_are_seeded_and_inside_the_room():
    feats, coords, ranges = bench.decoder_inputs(500, "cpu", in_channels=32, seed=3)
    again = bench.decoder_inputs(500, "cpu", in_channels=32, seed=3)
    assert feats[0].shape == (500, 32) and coords[0].shape == (500, 3)
    assert torch.equal(feats[0], again[0][0]) and torch.equal(coords[0], again[1][0])
    lo, hi = ranges[0]
    assert (coords[0] >= lo).all() and (coords[0] <= hi).all() and hi.tolist() == [8.0, 6.0, 3.0]
    with pytest.raises(ValueError, match="superpoints"):
        bench.decoder_inputs(0, "cpu")


def _labelled_room(seed: int) -> dict:
    """A small synthetic room in the bench-scene format (segment20 / instance / superpoint arrays)."""
    from lassm.data.superpoints import segment_mesh

    room = generate_room(seed, "small")
    superpoint = segment_mesh(room.mesh.vertices, room.mesh.faces)
    segment20 = np.where(room.instance >= 0, 2 + room.instance % 18, 0)  # objects get thing classes
    return {"coord": room.mesh.vertices.astype(np.float32), "color": room.mesh.colors,
            "segment20": segment20.astype(np.int16), "instance": room.instance.astype(np.int16),
            "superpoint": superpoint.astype(np.int32)}


def test_train_benchmark_runs_the_training_step(capsys):
    scenes = [_labelled_room(i) for i in range(3)]
    rows = bench.bench_train(scenes, "cpu", "synthetic", variants=(3,), amp="off", repeat=1,
                             augmentation=False)
    printed = capsys.readouterr().out
    (row,) = rows
    # validation pipeline: voxelisation only, so the batch holds every scene's voxels at the preset's grid
    assert 0 < row["voxels"] <= sum(len(s["coord"]) for s in scenes)
    assert row["step_ms"] > 0 and row["data_ms"] > 0
    assert row["s_per_step"] == pytest.approx((row["data_ms"] + row["step_ms"]) / 1e3)
    assert f"{row['voxels']:,}" in printed


def test_train_benchmark_needs_labelled_scenes():
    scene = {"coord": np.zeros((10, 3), np.float32), "color": np.zeros((10, 3), np.uint8)}
    with pytest.raises(ValueError, match="perf_\\*.npz scenes with labels"):
        bench.bench_train([scene], "cpu", "synthetic", variants=(3,), repeat=1)


def test_model_benchmark_stages_cover_the_step(capsys, tmp_path):
    """`bench model` on CPU: every named stage is timed, and the stages add up to the timed run."""
    from lassm import bench_model as bm

    scenes = [_labelled_room(0), _labelled_room(1)]
    train = bm.bench_model_train(scenes, "cpu", "synthetic", t_layer=3, amp="off", repeat=1, warmup=1)
    infer = bm.bench_model_infer(scenes[0], "cpu", "synthetic", t_layer=0, amp="off", repeat=1, warmup=1)
    for row, names in ((train, bm.stage_names(6, "train")), (infer, bm.stage_names(6, "infer"))):
        assert set(names) <= set(row["stages"])
        assert all(v >= 0 for v in row["stages"].values())
        assert sum(row["stages"].values()) == pytest.approx(row["timed_total_ms"], rel=1e-6)
    assert train["stages"]["backward"] > 0 and train["stages"]["matching"] > 0
    assert infer["points"] == len(scenes[0]["coord"])
    table = bm.format_stages([train, infer])
    assert "backward" in table and "postprocess" in table and "END TO END" in table


def test_scaled_scene_has_exact_size_and_unique_ids():
    from lassm.bench_model import loglog_slope, scaled_scene

    rooms = [_labelled_room(0), _labelled_room(1)]
    one = len(rooms[0]["coord"])
    for n in (one // 3, one, 2 * one + 77, 5 * one):
        scene = scaled_scene(rooms, n)
        assert len(scene["coord"]) == len(scene["superpoint"]) == len(scene["instance"]) == n
    big = scaled_scene(rooms, 2 * one + len(rooms[1]["coord"]))  # rooms 0, 1, 0 side by side
    assert len(np.unique(big["superpoint"])) == 2 * len(np.unique(rooms[0]["superpoint"])) + len(
        np.unique(rooms[1]["superpoint"]))
    assert big["coord"][:, 0].max() - big["coord"][:, 0].min() > 3 * np.ptp(rooms[0]["coord"][:, 0])
    assert loglog_slope([1, 10, 100], [3, 30, 300]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_points"):
        scaled_scene(rooms, 0)


def test_stage_timer_charges_nested_stages_exclusively():
    import time as _time

    from lassm.profiling import StageTimer, stage

    with StageTimer("cpu") as timer:
        with stage("outer"):
            _time.sleep(0.02)
            with stage("inner"):
                _time.sleep(0.03)
        with stage("inner"):
            _time.sleep(0.01)
    assert timer.ms["inner"] == pytest.approx(40, abs=15) and timer.ms["outer"] == pytest.approx(20, abs=15)
    assert sum(timer.ms.values()) <= timer.total_ms
    assert stage("anything").__enter__() is None  # no timer: a no-op context
