"""The benchmark command runs end to end on a tiny input and prints its table."""

from __future__ import annotations

import numpy as np

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
