"""The benchmarks run end to end on tiny inputs and print their tables; the timing toolkit measures
what it says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lassm import bench
from lassm.bench import scenes as bench_scenes
from lassm.bench import timing
from lassm.model import stages


def _room(seed: int) -> dict:
    """A small generated room in the bench-scene format (segment20 / instance / superpoint arrays)."""
    return bench.synthetic_bench_scene(seed, "small")


def test_backbone_benchmark_prints_rows(capsys):
    rows = bench.bench_backbone("cpu", backends=("torch",), precisions=("fp32",), repeat=1, scenes=[_room(0)])
    printed = capsys.readouterr().out
    assert len(rows) == 1 and rows[0]["voxels"] > 1000
    assert rows[0]["forward_ms"] > 0 and rows[0]["train_ms"] > 0
    assert "torch" in printed and f"{rows[0]['voxels']}" in printed


def test_voxel_batch_packs_scenes_with_offsets():
    scenes = [{"coord": np.random.default_rng(i).random((500, 3), dtype=np.float32),
               "color": np.zeros((500, 3), np.uint8), "superpoint": np.zeros(500, np.int32)}
              for i in range(2)]
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
        assert bench.format_decoder_row(row) in printed
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


def test_train_benchmark_runs_the_training_step(capsys):
    scenes = [_room(i) for i in range(3)]
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
    scenes = [_room(0), _room(1)]
    train = bench.bench_model_train(scenes, "cpu", "synthetic", t_layer=3, amp="off", repeat=1, warmup=1)
    infer = bench.bench_model_infer(scenes[0], "cpu", "synthetic", t_layer=0, amp="off", repeat=1, warmup=1)
    for row, names in ((train, stages.stage_names(6, "train")), (infer, stages.stage_names(6, "infer"))):
        assert set(names) <= set(row["stages"])
        assert all(v >= 0 for v in row["stages"].values())
        assert sum(row["stages"].values()) == pytest.approx(row["timed_total_ms"], rel=1e-6)
    assert train["stages"]["backward"] > 0 and train["stages"]["matching"] > 0
    assert infer["points"] == len(scenes[0]["coord"])
    known = set(stages.STAGES) | {stages.layer_stage(i) for i in range(1, 7)} | {"other"}
    assert set(train["stages"]) | set(infer["stages"]) <= known  # the model names its stages from one list
    table = bench.format_stages([train, infer])
    assert "backward" in table and "postprocess" in table and "END TO END" in table


def test_scaled_scene_has_exact_size_and_unique_ids():
    from lassm.bench import loglog_slope, scaled_scene

    rooms = [_room(0), _room(1)]
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

    stage = stages.stage
    with timing.StageTimer("cpu") as timer:
        with stage("outer"):
            _time.sleep(0.02)
            with stage("inner"):
                _time.sleep(0.03)
        with stage("inner"):
            _time.sleep(0.01)
    # sleeps never end early but may run late on a busy machine: bound from below, and "outer" stays
    # under the 50 ms it would reach if it also charged its nested "inner"
    assert timer.ms["inner"] >= 40 and 20 <= timer.ms["outer"] < 50
    assert sum(timer.ms.values()) <= timer.total_ms
    assert stage("anything").__enter__() is None  # no timer: a no-op context


def test_stage_timer_listens_alone_and_stops_listening():
    stage = stages.stage
    with pytest.raises(RuntimeError, match="already active"):
        with timing.StageTimer("cpu"):
            with timing.StageTimer("cpu"):
                pass
    assert stage("x") is stage("y")  # the failed nesting left no listener behind: the shared no-op
    with pytest.raises(KeyError):
        with timing.StageTimer("cpu"):
            raise KeyError("boom")
    assert stage("x") is stage("y")
    with timing.StageTimer("cpu") as timer:
        with stages.paused(), stage("hidden"):
            pass
        with stage(stages.BACKBONE):
            pass
    assert set(timer.ms) == {stages.BACKBONE}


def test_stage_names_order():
    assert stages.stage_names(2, "infer") == ("to_device", "voxelise", "backbone", "pooling", "query_init",
                                              "head0", "layer1", "layer2", "postprocess")
    assert stages.stage_names(1, "train")[-5:] == ("targets", "matching", "losses", "backward", "optimiser")
    with pytest.raises(ValueError, match="mode"):
        stages.stage_names(6, "eval")


def test_time_call_reports_the_median():
    import time as _time

    sleeps = iter([0.0, 0.0, 0.2, 0.01, 0.03])  # two warm-up calls, then three timed ones
    ms, peak = timing.time_call(lambda: _time.sleep(next(sleeps)), torch.device("cpu"), repeat=3, warmup=2)
    assert 30 <= ms < 80 and peak > 0  # the median (30 ms), not the mean (80 ms) nor the first run


def test_summarise_stages_orders_names_and_computes_other():
    timers = []
    for scale in (1.0, 3.0, 2.0):
        t = timing.StageTimer("cpu")
        t.ms, t.total_ms = {"b": 2 * scale, "a": 1 * scale, "zz": 0.5}, 4 * scale
        timers.append(t)
    out = timing.summarise_stages(timers, [5.0, 7.0, 6.0], ("a", "b"))
    assert list(out["stages"]) == ["a", "b", "zz", "other"]
    assert out["stages"]["a"] == 2 and out["stages"]["b"] == 4
    assert out["stages"]["other"] == pytest.approx(1.5)
    assert out["timed_total_ms"] == 8 and out["total_ms"] == 6


def test_write_rows_writes_indented_json_atomically(tmp_path):
    out = tmp_path / "sub" / "rows.json"
    timing.write_rows(out, [{"a": 1}])
    assert json.loads(out.read_text()) == [{"a": 1}] and out.read_text().startswith("[\n {")
    assert [p.name for p in out.parent.iterdir()] == ["rows.json"]  # no temporary file left


def test_voxel_batch_is_first_point_per_voxel():
    from lassm.voxelize import grid_sample_first

    scene = _room(2)
    batch = bench.voxel_batch([scene], "cpu")
    coord = torch.as_tensor(scene["coord"])
    grid, keep = grid_sample_first(coord, 0.02)
    color = torch.as_tensor(scene["color"][keep.numpy()], dtype=torch.float32)
    assert torch.equal(batch["grid_coord"], grid)
    assert torch.equal(batch["feat"], torch.cat([color / 127.5 - 1, coord[keep]], 1))
    assert batch["offset"].tolist() == [len(grid)]


def test_synthetic_bench_scene_labels_things_only():
    scene = _room(3)
    n = len(scene["coord"])
    assert all(len(scene[k]) == n for k in ("color", "segment20", "instance", "superpoint"))
    segment, instance = scene["segment20"], scene["instance"]
    assert (instance[segment < 2] == -1).all() and (instance[segment >= 2] >= 0).all()
    assert (segment == 0).any() and (segment == 1).any() and (segment >= 2).any()


def test_inference_benchmark_predicts_as_lassm_inference():
    """The timed inference is the package's one inference path: the same instances as predict_arrays."""
    from lassm.bench.model import build_model, inference_fn
    from lassm.inference import predict_arrays

    scene = _room(0)
    cfg, model = build_model("synthetic", 0, torch.device("cpu"), train=False)
    infer, out = inference_fn(model, cfg, scene, torch.device("cpu"), None)
    infer()
    expected = predict_arrays(model, cfg, bench_scenes.scene_arrays(scene), "cpu")
    assert torch.equal(out[0].scores, expected.scores) and torch.equal(out[0].masks, expected.masks)


def test_ddp_benchmark_runs_one_then_two_processes(tmp_path, capsys):
    """`bench ddp` on CPU (gloo): the training loop in 1 and in 2 processes, 3 steps each (1 warm-up) on
    generated small rooms, the tiny model; rows in the printed table and the JSON file."""
    out = tmp_path / "rows.json"
    bench.main(["ddp", "--device", "cpu", "--gpus", "2", "--steps", "3", "--warmup", "1", "--batch-size", "1",
                "--rooms", "3", "--room-size", "small", "--tiny", "--num-workers", "0", "--out",
                str(tmp_path / "work"), "--json", str(out)])
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [(r["processes"], r["batch_per_process"], r["timed_steps"]) for r in rows] == [(1, 1, 2),
                                                                                         (2, 1, 2)]
    for row in rows:
        assert row["s_per_step"] > 0
        assert row["scenes_per_s"] == pytest.approx(row["processes"] / row["s_per_step"])
        assert bench.format_ddp_row(row) in printed
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[1]["scenes_per_s"] / rows[0]["scenes_per_s"])
    assert bench.DDP_HEADER in printed and "1 CPU threads per process" in printed
    for processes in (1, 2):  # the timings are the runs' own: one train record per step, no validation
        records = [json.loads(x) for x in (tmp_path / "work" / "runs" / f"ddp-{processes}" / "metrics.jsonl")
                   .read_text().splitlines()]
        assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
        assert not [r for r in records if r["kind"] == "val"]
    with pytest.raises(SystemExit):
        bench.main(["ddp", "--device", "cpu", "--steps", "2", "--warmup", "2"])


def test_count_ops_charges_each_operator_to_its_innermost_stage():
    from lassm.bench.ops import count_ops, format_ops

    x = torch.ones(4)

    def fn():
        x.add(1)  # outside every stage: "other"
        with stages.stage("outer"):
            x.mul(2).sum()
            with stages.stage("inner"):
                x.view(2, 2).exp()  # view: an op, but no kernel (not a leaf that counts)

    counts = count_ops(fn)
    assert counts["outer"]["ops"] >= 2 and counts["outer"]["leaf"] == 2
    assert counts["inner"]["ops"] >= 2 and counts["inner"]["leaf"] == 1
    assert counts["other"]["leaf"] == 1
    assert counts["total"]["ops"] == sum(c["ops"] for n, c in counts.items() if n != "total")
    assert not stages._LISTENERS  # the listener is gone again
    assert "inner" in format_ops({"run": counts})


def test_ops_command_counts_the_training_step(tmp_path, capsys, monkeypatch):
    """The command's wiring (the real step takes minutes on a CPU: a stand-in that marks two stages)."""
    from lassm.bench import model as bench_model

    class Step:
        def __init__(self, scenes, device, preset, t_layer, amp, augmentation):
            assert (device, amp, augmentation, len(scenes)) == ("cpu", "off", False, 1)

        def __call__(self):
            with stages.stage(stages.LOSSES):
                torch.ones(3).exp()
            with stages.stage(stages.BACKWARD):
                torch.ones(3).log()

    monkeypatch.setattr(bench_model, "TrainingStep", Step)
    out = tmp_path / "ops.json"
    bench.main(["ops", "--small", "--scenes", "1", "--variants=-0", "--json", str(out)])
    (row,) = json.loads(out.read_text())
    assert row["variant"] == "-0" and row["stages"]["losses"]["leaf"] >= 1
    assert "backward" in capsys.readouterr().out


def test_sync_census_counts_nothing_on_the_cpu_and_formats_its_sites():
    import collections

    from lassm.bench.model import format_sync_sites, sync_sites
    calls = []
    assert sync_sites(lambda: calls.append(1), "cpu") == collections.Counter() and not calls
    sites = collections.Counter({"model/lassm.py:114 < train.py:136": 3, "augment.py:355": 1})
    assert format_sync_sites(sites).splitlines() == [
        "synchronisations torch flags: 4",
        "    3  model/lassm.py:114 < train.py:136",
        "    1  augment.py:355"]
