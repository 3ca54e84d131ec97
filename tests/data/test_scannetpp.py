"""ScanNet++ preprocessing and chunking on fixtures the tests build themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lassm.data import scannetpp
from lassm.data.io import DataError, Mesh, load_scene, write_mesh_ply, write_scene
from lassm.data.labels import CLASS_LABELS_PP
from lassm.data.preprocess import run_jobs

CHAIR, TABLE, CUP = (CLASS_LABELS_PP.index(n) for n in ("chair", "table", "cup"))
MAP_ROWS = [  # class, semantic_map_to
    ("table", ""),  # keeps its name
    ("seat", "chair"),  # renamed to a benchmark class
    ("chair", ""),
    ("cup", ""),
    ("paper", "None"),  # a benchmark class, dropped by the map
    ("rug", "None"),
    ("gadget", "no such class"),  # renamed to a name outside the 100 classes
]
# What MAP_ROWS means, worked out by hand: raw label -> semantic index ("unicorn" is not listed).
EXPECTED_INDEX = {"table": TABLE, "seat": CHAIR, "chair": CHAIR, "cup": CUP}


def write_map(path: Path, rows, header=("class", "count", "semantic_map_to", "instance_map_to")):
    lines = [",".join(header)] + [f"{name},1,{to}," for name, to in rows]
    path.write_text("\n".join(lines) + "\n")


def plane_mesh(nx: int, ny: int, seed: int) -> Mesh:
    """A triangulated nx x ny vertex patch with 5 cm spacing and random colours."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(nx) * 0.05, np.arange(ny) * 0.05, indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), rng.normal(0, 0.003, x.size)], 1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return Mesh(v, rng.integers(0, 256, (len(v), 3)).astype(np.uint8), faces)


def fixture_groups(seg: np.ndarray) -> list[dict]:
    """Overlapping groups: segment 1 gets 4 candidate labels, segment 2 gets 2, and so on."""
    return [
        {"objectId": 0, "label": "table", "segments": [0, 1, 2]},
        {"objectId": 1, "label": "seat", "segments": [1, 2]},
        {"objectId": 2, "label": "unicorn", "segments": [1]},  # unknown label: takes no slot
        {"objectId": 3, "label": "cup", "segments": [1]},
        {"objectId": 4, "label": "paper", "segments": [1, 3]},  # dropped ("None")
        {"objectId": 5, "label": "chair", "segments": [1, 3]},  # a 4th label on segment 1
        {"objectId": 6, "label": "gadget", "segments": [3]},
    ]


def make_raw_root(root: Path, scenes=None) -> dict:
    """A ScanNet++ tree; returns {scene: (mesh, segIndices or None, groups or None)}."""
    scenes = scenes or {"train": ["s_a", "s_b"], "val": ["s_c"], "test": ["s_d"]}
    (root / "splits").mkdir(parents=True)
    for split, names in scenes.items():
        (root / "splits" / scannetpp.SPLIT_FILES[split]).write_text("\n".join(names) + "\n")
    meta = root / "metadata" / "semantic_benchmark"
    meta.mkdir(parents=True)
    (meta / "top100.txt").write_text("\n".join(CLASS_LABELS_PP) + "\n")
    write_map(meta / "map_benchmark.csv", MAP_ROWS)
    out = {}
    for k, (split, name) in enumerate((s, n) for s, names in scenes.items() for n in names):
        mesh = plane_mesh(8 + k, 7, seed=k)
        scans = root / "data" / name / "scans"
        write_mesh_ply(scans / "mesh_aligned_0.05.ply", mesh)
        seg = groups = None
        if split != "test":
            n = len(mesh.vertices)
            seg = np.minimum(np.arange(n) // 6, 5)  # six segments 0..5, 6 vertices or more each
            groups = fixture_groups(seg)
            (scans / "segments.json").write_text(json.dumps({"segIndices": seg.tolist()}))
            (scans / "segments_anno.json").write_text(json.dumps({"segGroups": groups}))
        out[name] = (mesh, seg, groups)
    return out


def plain_annotation(seg, groups, label_index):
    """Independent per-vertex re-derivation of REFERENCE_SPEC 1.2 step 3 with Python lists."""
    n = len(seg)
    labels = [[] for _ in range(n)]  # per vertex: [class, objectId, size of its step]
    for g in groups:
        cls = label_index.get(g["label"], -1)
        if cls < 0:
            continue
        picked = [v for v in range(n) if seg[v] in set(g["segments"]) and len(labels[v]) < 3]
        for v in picked:
            labels[v].append([cls, g["objectId"], len(picked)])
    segment = np.full((n, 3), -1, np.int16)
    instance = np.full((n, 3), -1, np.int16)
    for v, lab in enumerate(labels):
        if len(lab) > 1:
            best = min(range(len(lab)), key=lambda j: lab[j][2])  # first smallest
            lab[0], lab[best] = lab[best], lab[0]
        for j, (cls, obj, _) in enumerate(lab):
            segment[v, j], instance[v, j] = cls, obj
    return segment, instance


# ----------------------------------------------------------------------------- metadata


def test_label_map_and_index(tmp_path):
    make_raw_root(tmp_path)
    meta = tmp_path / "metadata" / "semantic_benchmark"
    assert scannetpp.read_label_index(meta) == EXPECTED_INDEX
    # Row order: a later rename wins, a later empty row keeps an entry, "None" removes nothing.
    rows = [("box", ""), ("box", "None"), ("lamp", "shelf"), ("lamp", ""),
            ("bin", "None"), ("bin", "trash can")]
    write_map(tmp_path / "order.csv", rows)
    assert scannetpp.read_label_map(tmp_path / "order.csv") == {
        "box": "box", "lamp": "shelf", "bin": "trash can"}


def test_bad_metadata(tmp_path):
    make_raw_root(tmp_path)
    meta = tmp_path / "metadata" / "semantic_benchmark"
    write_map(meta / "map_benchmark.csv", MAP_ROWS, header=("name", "n", "semantic_map_to", "x"))
    with pytest.raises(DataError, match="map_benchmark.csv.*'class'"):
        scannetpp.find_jobs(tmp_path)
    (meta / "map_benchmark.csv").unlink()
    with pytest.raises(DataError, match="map_benchmark.csv"):
        scannetpp.find_jobs(tmp_path)
    swapped = list(CLASS_LABELS_PP)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    (meta / "top100.txt").write_text("\n".join(swapped))
    with pytest.raises(DataError, match="top100.txt.*line 4"):
        scannetpp.find_jobs(tmp_path)
    (meta / "top100.txt").unlink()
    with pytest.raises(DataError, match="top100.txt"):
        scannetpp.find_jobs(tmp_path)
    assert len(scannetpp.find_jobs(tmp_path, splits=("test",))) == 1  # test needs no label meta
    with pytest.raises(DataError, match="splits"):
        scannetpp.find_jobs(tmp_path, splits=("training",))


def test_missing_scene_files(tmp_path):
    make_raw_root(tmp_path)
    (tmp_path / "splits" / "sem_test.txt").unlink()
    with pytest.raises(DataError, match="sem_test.txt"):
        scannetpp.find_jobs(tmp_path)
    assert len(scannetpp.find_jobs(tmp_path, splits=("train", "val"))) == 3
    (tmp_path / "data" / "s_c" / "scans" / "segments_anno.json").unlink()
    with pytest.raises(DataError, match="s_c/scans/segments_anno.json"):
        scannetpp.find_jobs(tmp_path, splits=("val",))
    (tmp_path / "data" / "s_a" / "scans" / "mesh_aligned_0.05.ply").unlink()
    with pytest.raises(DataError, match="s_a/scans/mesh_aligned_0.05.ply"):
        scannetpp.find_jobs(tmp_path, splits=("train",))


# ----------------------------------------------------------------------------- annotation


def test_multilabel_hand_built():
    """Slot sizes are the vertices labelled in that step, not the group size (audit note 1)."""
    seg = np.repeat([0, 1, 2, 3], [2, 10, 1, 4])  # A: 0-1, B: 2-11, D: 12, E: 13-16
    index = {"l1": 1, "l2": 2, "l3": 3, "l4": 4, "l5": 5, "l6": 6, "l7": 7}
    groups = [
        {"objectId": 10, "label": "l1", "segments": [0]},
        {"objectId": 11, "label": "l2", "segments": [0]},
        {"objectId": 12, "label": "l3", "segments": [0]},  # A is full now
        {"objectId": 13, "label": "l4", "segments": [0, 1]},  # only B: step size 10, group 12
        {"objectId": 14, "label": "l5", "segments": [1, 2]},  # step size 11
        {"objectId": 15, "label": "l6", "segments": [3]},
        {"objectId": 16, "label": "l7", "segments": [3]},  # same size as l6: no swap on ties
        {"objectId": 17, "label": "unicorn", "segments": [0, 1, 2, 3]},  # unknown: ignored
    ]
    segment, instance = scannetpp.annotate_vertices(seg, groups, index)
    assert segment.dtype == np.int16 and instance.dtype == np.int16 and segment.shape == (17, 3)
    # A: three labels of size 2 each, kept in file order; l4 found no free slot there.
    assert (segment[:2] == [1, 2, 3]).all() and (instance[:2] == [10, 11, 12]).all()
    # B: l4 (10 labelled) is smaller than l5 (11) although the l4 group has 12 vertices.
    assert (segment[2:12] == [4, 5, -1]).all() and (instance[2:12] == [13, 14, -1]).all()
    assert (segment[12] == [5, -1, -1]).all()  # D: only l5
    assert (segment[13:] == [6, 7, -1]).all() and (instance[13:] == [15, 16, -1]).all()
    # The swap moves the smallest instance into column 0 and the old column 0 into its slot.
    seg2 = np.repeat([0, 1], [3, 1])
    groups2 = [{"objectId": 1, "label": "l1", "segments": [0, 1]},
               {"objectId": 2, "label": "l2", "segments": [0]},
               {"objectId": 3, "label": "l3", "segments": [1]}]
    segment, instance = scannetpp.annotate_vertices(seg2, groups2, index)
    assert (instance[:3] == [2, 1, -1]).all() and (instance[3] == [3, 1, -1]).all()
    assert (segment[3] == [3, 1, -1]).all()


def test_multilabel_matches_plain_derivation():
    rng = np.random.default_rng(0)
    for trial in range(5):
        n, n_seg = 60, 12
        seg = rng.integers(0, n_seg, n)
        seg[:n_seg] = np.arange(n_seg)  # every segment id has a vertex
        names = ["table", "seat", "cup", "paper", "unicorn", "chair"]
        groups = [{"objectId": int(i), "label": str(rng.choice(names)),
                   "segments": rng.choice(n_seg, rng.integers(1, 6), replace=False).tolist()}
                  for i in range(rng.integers(5, 20))]
        got = scannetpp.annotate_vertices(seg, groups, EXPECTED_INDEX)
        want = plain_annotation(seg, groups, EXPECTED_INDEX)
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all(), trial
        assert (got[0][:, 1:] >= 0).any()  # the random case does exercise several labels


def test_unknown_segments_and_bad_groups(tmp_path):
    seg = np.array([0, 0, 1, 1])
    with pytest.raises(DataError, match=r"anno.json: segGroups\[1\].*\[7\]"):
        scannetpp.annotate_vertices(seg, [{"objectId": 0, "label": "table", "segments": [0]},
                                          {"objectId": 1, "label": "rug", "segments": [1, 7]}],
                                    EXPECTED_INDEX, source="anno.json")
    with pytest.raises(DataError, match="objectId"):
        scannetpp.annotate_vertices(seg, [{"label": "table", "segments": [0]}], EXPECTED_INDEX)
    with pytest.raises(DataError, match="int16"):
        scannetpp.annotate_vertices(seg, [{"objectId": 40000, "label": "table", "segments": [0]}],
                                    EXPECTED_INDEX)


# ----------------------------------------------------------------------------- whole scenes


def test_process_scenes(tmp_path):
    fixture = make_raw_root(tmp_path)
    jobs = {job.name: job for job in scannetpp.find_jobs(tmp_path)}
    assert {n: j.split for n, j in jobs.items()} == {"s_a": "train", "s_b": "train", "s_c": "val",
                                                     "s_d": "test"}
    for name, job in jobs.items():
        mesh, seg, groups = fixture[name]
        arrays = scannetpp.process(job)
        assert str(arrays["scene_id"]) == name
        assert arrays["coord"].dtype == np.float32 and arrays["color"].dtype == np.uint8
        assert np.array_equal(arrays["coord"], mesh.vertices)
        assert np.array_equal(arrays["color"], mesh.colors)
        assert np.allclose(np.linalg.norm(arrays["normal"], axis=1), 1, atol=1e-5)
        assert arrays["normal"][:, 2].min() > 0.9  # a near-flat patch facing +z
        assert arrays["superpoint"].shape == (len(mesh.vertices),)
        if job.split == "test":
            assert "segment" not in arrays and "instance" not in arrays
            continue
        want = plain_annotation(seg, groups, EXPECTED_INDEX)
        assert np.array_equal(arrays["segment"], want[0])
        assert np.array_equal(arrays["instance"], want[1])
        # Segment 1 had four known labels (table, seat, cup, chair): the fourth found no slot.
        v = np.flatnonzero(seg == 1)
        assert (np.sort(arrays["instance"][v], axis=1) == [0, 1, 3]).all()
        assert (arrays["instance"][v, 0] == 3).all() and (arrays["segment"][v, 0] == CUP).all()
        assert (arrays["segment"][seg == 5] == -1).all()  # never annotated


def test_process_bad_annotations(tmp_path):
    make_raw_root(tmp_path, {"train": ["s_a"]})
    job = scannetpp.find_jobs(tmp_path, splits=("train",))[0]
    anno = tmp_path / "data" / "s_a" / "scans" / "segments_anno.json"
    groups = json.loads(anno.read_text())["segGroups"]
    groups.append({"objectId": 9, "label": "cup", "segments": [99]})
    anno.write_text(json.dumps({"segGroups": groups}))
    with pytest.raises(DataError, match="segments_anno.json.*99"):
        scannetpp.process(job)
    segs = tmp_path / "data" / "s_a" / "scans" / "segments.json"
    segs.write_text(json.dumps({"segIndices": [0, 1, 2]}))
    with pytest.raises(DataError, match="segments.json.*one per mesh vertex"):
        scannetpp.process(job)


def test_run_jobs(tmp_path):
    fixture = make_raw_root(tmp_path / "raw")
    jobs = scannetpp.find_jobs(tmp_path / "raw")
    summary = run_jobs(jobs, scannetpp.process, tmp_path / "out", workers=2)
    assert sorted(summary.done) == sorted(fixture)
    val = load_scene(tmp_path / "out" / "val" / "s_c")
    assert set(val) == {"coord", "color", "normal", "superpoint", "segment", "instance", "scene_id"}
    assert val["segment"].shape == (len(fixture["s_c"][0].vertices), 3)
    assert "segment" not in load_scene(tmp_path / "out" / "test" / "s_d")
    assert run_jobs(jobs, scannetpp.process, tmp_path / "out").skipped == [j.name for j in jobs]
    # A broken scene fails with its file named and leaves no folder behind.
    faceless = Mesh(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8), np.zeros((0, 3), int))
    write_mesh_ply(tmp_path / "raw" / "data" / "s_b" / "scans" / "mesh_aligned_0.05.ply", faceless)
    with pytest.raises(DataError, match="s_b.*mesh_aligned_0.05.ply"):
        run_jobs(jobs, scannetpp.process, tmp_path / "out2")
    assert not (tmp_path / "out2" / "train" / "s_b").exists()


# ----------------------------------------------------------------------------- chunking


def write_cloud(root: Path, name: str, coord: np.ndarray, split="train"):
    """A processed scene whose superpoint array is the point's index, to track membership."""
    n = len(coord)
    write_scene(root / split / name, {
        "coord": coord.astype(np.float32), "color": np.zeros((n, 3), np.uint8),
        "superpoint": np.arange(n), "segment": np.full((n, 3), -1, np.int16),
        "scene_id": np.array(name)})


def brute_chunks(c: np.ndarray, xs, ys, size=(6, 6)) -> list[set]:
    """Members of each chunk (x-major), by a loop over the points and the given origins."""
    return [{i for i in range(len(c))
             if x0 <= c[i, 0] < x0 + size[0] and y0 <= c[i, 1] < y0 + size[1]}
            for x0 in xs for y0 in ys]


def test_chunk_membership_and_bug_flag(tmp_path):
    # A 12 m x 6 m lattice with 0.5 m spacing, shifted away from the origin.
    x, y = np.meshgrid(np.arange(25) * 0.5, np.arange(13) * 0.5, indexing="ij")
    c = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    shift = np.array([10.0, -5.0, 1.0])
    write_cloud(tmp_path, "room", c + shift)
    out = tmp_path / "train_grid1mm_chunk6x6_stride3x3"  # the reference's name for a 1 cm grid
    assert scannetpp.chunk_folder_name("train", 0.01, (6, 6), (3, 3)) == out.name
    for flag, ys in ((False, [0]), (True, [0, 3, 6])):  # x origins: 0, 3, 6 (below 12 + 3 - 6)
        names = scannetpp.chunk_scenes(tmp_path, min_points=1, reference_y_origins=flag)
        want = [m for m in brute_chunks(c, [0, 3, 6], ys) if m]
        assert names == [f"room_{k}" for k in range(len(want))]
        for name, members in zip(names, want, strict=True):
            chunk = load_scene(out / name)
            assert set(chunk["superpoint"].tolist()) == members
            assert np.allclose(chunk["coord"], c[chunk["superpoint"]] + shift)  # original coords
            assert chunk["segment"].shape == (len(members), 3) and str(chunk["scene_id"]) == name
    assert len(names) == 9 and not (out / "room_9").exists()


def test_chunk_grid_dedup_and_narrow_scene(tmp_path):
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 4, (200, 3))  # 0.5 m voxels, jittered away from their borders
    coord = cells * 0.5 + 0.25 + rng.uniform(-0.1, 0.1, (200, 3))
    coord[0] = [0.0, 0.0, 0.0]  # fixes min(coord) at 0 so keys below are the work keys
    keys = [tuple(k) for k in np.floor(coord / 0.5).astype(int)]
    first = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    want = [first[k] for k in sorted(first)]
    write_cloud(tmp_path, "box", coord)
    # A 2 m scene: the correct default keeps the origin chunk, the reference makes none.
    names = scannetpp.chunk_scenes(tmp_path, grid_size=0.5, min_points=1)
    assert names == ["box_0"]
    chunk = load_scene(tmp_path / "train_grid50mm_chunk6x6_stride3x3" / "box_0")
    assert chunk["superpoint"].tolist() == want
    ref = scannetpp.chunk_scenes(tmp_path, grid_size=0.5, min_points=1, reference_y_origins=True)
    assert ref == []
    assert not (tmp_path / "train_grid50mm_chunk6x6_stride3x3" / "box_0").exists()


def test_chunk_min_points_rerun_and_workers(tmp_path):
    rng = np.random.default_rng(2)
    dense = lambda x0: np.c_[rng.uniform(x0, x0 + 2, 500), rng.uniform(0, 2, 500), np.zeros(500)]  # noqa: E731
    sparse = np.c_[np.linspace(0, 12, 50), np.ones(50), np.zeros(50)]
    coord = np.concatenate([dense(0.5), dense(9.5), sparse])  # x origins 0, 3, 6; y origin 0
    write_cloud(tmp_path, "a", coord)
    write_cloud(tmp_path, "b", coord[::-1] * [1, 1, 2])
    c = coord - coord.min(0)
    sizes = [len(m) for m in brute_chunks(c, [0, 3, 6], [0])]
    assert sizes[1] < 400 <= min(sizes[0], sizes[2])  # the middle chunk holds only the sparse line
    names = scannetpp.chunk_scenes(tmp_path, grid_size=None, min_points=400)
    assert names == ["a_0", "a_1", "b_0", "b_1"]  # middle chunk skipped, numbering consecutive
    out = tmp_path / "train_chunk6x6_stride3x3"
    assert len(load_scene(out / "a_1")["coord"]) == sizes[2]
    # A rerun skips finished scenes: a file dropped into a chunk survives.
    (out / "a_1" / "sentinel").write_text("")
    assert scannetpp.chunk_scenes(tmp_path, grid_size=None, min_points=400, workers=2) == names
    assert (out / "a_1" / "sentinel").exists()
    # A lost chunk, or other parameters, redo the scene; chunks beyond the new count go away.
    (out / "b_1" / ".done").unlink()
    assert scannetpp.chunk_scenes(tmp_path, grid_size=None, min_points=400) == names
    assert scannetpp.chunk_scenes(tmp_path, grid_size=None, min_points=1, workers=2) == [
        "a_0", "a_1", "a_2", "b_0", "b_1", "b_2"]
    assert not (out / "a_1" / "sentinel").exists()
    assert scannetpp.chunk_scenes(tmp_path, grid_size=None, min_points=600) == []
    assert not any(out.glob("a_*")) and not any(out.glob("b_*"))


def test_chunk_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="train"):
        scannetpp.chunk_scenes(tmp_path)
    write_cloud(tmp_path, "a", np.zeros((5, 3)))
    (tmp_path / "train" / "half").mkdir()
    with pytest.raises(DataError, match="unfinished.*half"):
        scannetpp.chunk_scenes(tmp_path)
    with pytest.raises(DataError, match="chunk_range"):
        scannetpp.chunk_scenes(tmp_path, chunk_range=(6,))
    with pytest.raises(DataError, match="grid_size"):
        scannetpp.chunk_scenes(tmp_path, grid_size=0)


@pytest.mark.parametrize("file, content, message", [
    ("segments.json", {"segIndices": None}, r"segments\.json: segIndices must be a list of integers"),
    ("segments.json", {"segIndices": "0 1 2"}, r"segments\.json: segIndices must be a list of integers"),
    ("segments_anno.json", {"segGroups": {"a": 1}}, r"segments_anno\.json: segGroups must be a list"),
    ("segments_anno.json", {"segGroups": [[0]]}, r"segments_anno\.json: segGroups\[0\] must be an object"),
    ("segments_anno.json", {"segGroups": [{"objectId": True, "label": "cup", "segments": [0]}]},
     r"segGroups\[0\] expected a string label, an integer objectId"),
    ("segments_anno.json", {"segGroups": [{"objectId": 1, "label": "cup", "segments": [[0], [0, 1]]}]},
     r"segments_anno\.json: segGroups\[0\] segments must be a list of integers"),
    ("segments_anno.json", {"segGroups": [{"objectId": 1, "label": "cup", "segments": None}]},
     r"segGroups\[0\] segments must be a list of integers \(found NoneType\)"),
])
def test_malformed_annotation_json(tmp_path, file, content, message):
    make_raw_root(tmp_path, {"train": ["s_a"]})
    job = scannetpp.find_jobs(tmp_path, splits=("train",))[0]
    (tmp_path / "data" / "s_a" / "scans" / file).write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        scannetpp.process(job)


def test_nan_mesh_vertices_refused(tmp_path):
    make_raw_root(tmp_path, {"train": ["s_a"]})
    job = scannetpp.find_jobs(tmp_path, splits=("train",))[0]
    ply = tmp_path / "data" / "s_a" / "scans" / scannetpp.MESH_FILE
    from lassm.data.io import read_mesh_ply

    mesh = read_mesh_ply(ply)
    mesh.vertices[0, 2] = np.inf
    write_mesh_ply(ply, mesh)
    with pytest.raises(DataError, match=r"mesh_aligned_0\.05\.ply: 1 of \d+ vertices have NaN or infinite"):
        scannetpp.process(job)
