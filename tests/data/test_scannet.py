"""ScanNet-format preprocessing on fixtures the tests build themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lassm.data import labels
from lassm.data.io import DataError, Mesh, load_scene, write_mesh_ply
from lassm.data.prepare import prepare
from lassm.data.scannet import find_jobs, process

TSV_ROWS = [  # raw_category, ScanNet200 id, nyu40 id
    ("wall", 1, 1), ("floor", 3, 2), ("chair", 2, 5), ("table", 4, 7),
    ("kitchen towel", 31, 40),  # nyu40 40 is not a ScanNet20 class; id 31 is ScanNet200 "towel"
]


def grid_patch(nx: int, ny: int, origin, step=0.05, z=0.0, rng=None):
    """A flat triangulated patch: (nx*ny, 3) vertices, 2*(nx-1)*(ny-1) faces."""
    x, y = np.meshgrid(np.arange(nx) * step, np.arange(ny) * step, indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.full(x.size, z)], 1) + np.asarray(origin)
    if rng is not None:
        v[:, 2] += rng.normal(0, 0.002, len(v))
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    return v.astype(np.float32), np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def make_scene(root: Path, name: str, folder: str = "scans", labelled: bool = True):
    """Three separate patches (floor, a chair seat, a table top); segments = 4x4-vertex tiles."""
    rng = np.random.default_rng(len(name))
    parts = [grid_patch(12, 12, (0, 0, 0), rng=rng), grid_patch(6, 6, (0.1, 0.1, 0.45)),
             grid_patch(8, 8, (0.2, 0.2, 0.75))]
    verts, faces, offset = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    vertices = np.concatenate(verts)
    mesh = Mesh(vertices, rng.integers(0, 256, (len(vertices), 3)).astype(np.uint8), np.concatenate(faces))
    scene_dir = root / folder / name
    write_mesh_ply(scene_dir / f"{name}_vh_clean_2.ply", mesh)
    if not labelled:
        return mesh, None, None
    seg = (np.arange(len(vertices)) // 16).astype(np.int64) * 3 + 7  # arbitrary, non-contiguous ids
    part = np.repeat([0, 1, 2], [len(v) for v, _ in parts])
    groups = [
        {"id": 0, "objectId": 0, "label": "floor", "segments": np.unique(seg[part == 0]).tolist()},
        {"id": 1, "objectId": 1, "label": "chair", "segments": np.unique(seg[part == 1]).tolist()},
        {"id": 2, "objectId": 2, "label": "table", "segments": np.unique(seg[part == 2]).tolist()},
        # a later group overwrites the first table segment; an unknown label maps to -1
        {"id": 3, "objectId": 3, "label": "kitchen towel", "segments": [int(seg[part == 2][0])]},
        {"id": 4, "objectId": 4, "label": "no such category", "segments": [int(seg[0])]},
    ]
    (scene_dir / f"{name}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"params": {}, "sceneId": name, "segIndices": seg.tolist()}))
    (scene_dir / f"{name}.aggregation.json").write_text(json.dumps({"sceneId": name, "segGroups": groups}))
    return mesh, seg, groups


def make_raw_root(root: Path) -> dict:
    scenes = {n: make_scene(root, n) for n in ("scene0001_00", "scene0002_00", "scene0003_00")}
    scenes["scene0100_00"] = make_scene(root, "scene0100_00", folder="scans_test", labelled=False)
    (root / "scannetv2_train.txt").write_text("scene0001_00\nscene0002_00\n")
    (root / "scannetv2_val.txt").write_text("scene0003_00\n")
    lines = ["id\traw_category\tcategory\tcount\tnyu40id\tnyu40class"]
    lines += [f"{i}\t{r}\t{r}\t1\t{n}\tx" for r, i, n in TSV_ROWS]
    (root / "scannetv2-labels.combined.tsv").write_text("\n".join(lines) + "\n")
    return scenes


def expected_labels(seg, groups, n):
    """Plain per-vertex re-derivation of REFERENCE_SPEC 1.1 step 4."""
    table = {r: (labels.VALID_CLASS_IDS_20.index(n40) if n40 in labels.VALID_CLASS_IDS_20 else -1,
                 labels.VALID_CLASS_IDS_200.index(i) if i in labels.VALID_CLASS_IDS_200 else -1)
             for r, i, n40 in TSV_ROWS}
    s20, s200, inst = [-1] * n, [-1] * n, [-1] * n
    for v in range(n):
        for g in groups:
            if seg[v] in g["segments"]:
                s20[v], s200[v] = table.get(g["label"], (-1, -1))
                inst[v] = g["id"]
    return np.array(s20), np.array(s200), np.array(inst)


def test_splits_and_arrays(tmp_path):
    scenes = make_raw_root(tmp_path / "raw")
    jobs = {j.name: j for j in find_jobs(tmp_path / "raw")}
    assert {n: j.split for n, j in jobs.items()} == {
        "scene0001_00": "train", "scene0002_00": "train", "scene0003_00": "val", "scene0100_00": "test"}
    out = process(jobs["scene0001_00"])
    mesh, seg, groups = scenes["scene0001_00"]
    np.testing.assert_array_equal(out["coord"], mesh.vertices)
    np.testing.assert_array_equal(out["color"], mesh.colors)
    assert out["coord"].dtype == np.float32 and out["color"].dtype == np.uint8
    assert out["normal"].dtype == np.float32
    np.testing.assert_allclose(np.abs(out["normal"][:, 2]), 1, atol=0.1)  # near-flat patches
    for key in ("superpoint", "segment20", "segment200", "instance"):
        assert out[key].dtype == np.int64 and out[key].shape == (len(mesh.vertices),)
    s20, s200, inst = expected_labels(seg, groups, len(mesh.vertices))
    np.testing.assert_array_equal(out["segment20"], s20)
    np.testing.assert_array_equal(out["segment200"], s200)
    np.testing.assert_array_equal(out["instance"], inst)
    assert set(np.unique(out["segment20"])) == {-1, 1, 4, 6}  # unknown, floor, chair, table
    assert str(out["scene_id"]) == "scene0001_00"
    # superpoints never cross the three separate patches
    part = np.repeat([0, 1, 2], [144, 36, 64])
    for sp in np.unique(out["superpoint"]):
        assert len(np.unique(part[out["superpoint"] == sp])) == 1


def test_test_scene_has_no_labels(tmp_path):
    make_raw_root(tmp_path / "raw")
    job = next(j for j in find_jobs(tmp_path / "raw") if j.split == "test")
    out = process(job)
    assert set(out) == {"coord", "color", "normal", "superpoint", "scene_id"}


def test_prepare_writes_and_skips(tmp_path):
    make_raw_root(tmp_path / "raw")
    summary = prepare("scannet", tmp_path / "raw", tmp_path / "out", workers=2)
    assert sorted(summary.done) == ["scene0001_00", "scene0002_00", "scene0003_00", "scene0100_00"]
    scene = load_scene(tmp_path / "out" / "val" / "scene0003_00")
    assert {"coord", "segment20", "segment200", "instance", "superpoint"} <= set(scene)
    again = prepare("scannet", tmp_path / "raw", tmp_path / "out")
    assert again.done == [] and len(again.skipped) == 4


def test_unknown_segments_rejected_and_nothing_written(tmp_path):
    make_raw_root(tmp_path / "raw")
    agg = tmp_path / "raw/scans/scene0002_00/scene0002_00.aggregation.json"
    data = json.loads(agg.read_text())
    data["segGroups"][1]["segments"].append(999_999)
    agg.write_text(json.dumps(data))
    summary = prepare("scannet", tmp_path / "raw", tmp_path / "out")  # the other scenes go on
    assert "999999" in summary.failed["scene0002_00"] and "aggregation.json" in summary.failed["scene0002_00"]
    assert len(summary.failed) == 1
    assert not (tmp_path / "out/train/scene0002_00").exists()
    leftovers = list((tmp_path / "out").glob("*/.*"))  # temporary scene folders
    assert leftovers == []


@pytest.mark.parametrize("damage, message", [
    ("truncate", r"scene0001_00_vh_clean_2\.ply: unreadable or truncated"),
    ("no_faces", r"scene0001_00_vh_clean_2\.ply: mesh has no faces"),
    ("delete_segs", r"segs\.json: file not found"),
    ("short_segs", r"segs\.json: \d+ segIndices for a mesh of \d+ vertices"),
])
def test_bad_scene_files(tmp_path, damage, message):
    make_raw_root(tmp_path / "raw")
    scene_dir = tmp_path / "raw/scans/scene0001_00"
    ply = scene_dir / "scene0001_00_vh_clean_2.ply"
    segs = scene_dir / "scene0001_00_vh_clean_2.0.010000.segs.json"
    if damage == "truncate":
        ply.write_bytes(ply.read_bytes()[:-200])
    elif damage == "no_faces":
        mesh = Mesh(np.zeros((5, 3), np.float32), np.zeros((5, 3), np.uint8), np.zeros((0, 3), np.int64))
        write_mesh_ply(ply, mesh)
    elif damage == "delete_segs":
        segs.unlink()
    elif damage == "short_segs":
        data = json.loads(segs.read_text())
        segs.write_text(json.dumps({**data, "segIndices": data["segIndices"][:-3]}))
    job = next(j for j in find_jobs(tmp_path / "raw") if j.name == "scene0001_00")
    with pytest.raises(DataError, match=message):
        process(job)


def test_missing_meta_and_unknown_dataset(tmp_path):
    make_raw_root(tmp_path / "raw")
    (tmp_path / "raw/scannetv2_val.txt").unlink()
    with pytest.raises(DataError, match=r"scannetv2_val\.txt: file not found; expected scene names"):
        find_jobs(tmp_path / "raw")
    with pytest.raises(DataError, match=r"dataset: unknown name 'scannet300'"):
        prepare("scannet300", tmp_path / "raw", tmp_path / "out")
    with pytest.raises(DataError, match=r"raw_root: folder .* not found"):
        find_jobs(tmp_path / "nowhere")


def test_empty_raw_root(tmp_path):
    (tmp_path / "raw").mkdir()
    for name in ("scannetv2_train.txt", "scannetv2_val.txt"):
        (tmp_path / "raw" / name).write_text("")
    (tmp_path / "raw/scannetv2-labels.combined.tsv").write_text("id\traw_category\tnyu40id\n")
    with pytest.raises(DataError, match=r"no scene folders under scans or scans_test"):
        find_jobs(tmp_path / "raw")


def test_nan_vertices_refused(tmp_path):
    make_raw_root(tmp_path / "raw")
    ply = tmp_path / "raw/scans/scene0001_00/scene0001_00_vh_clean_2.ply"
    mesh, _, _ = make_scene(tmp_path / "raw", "scene0001_00")
    mesh.vertices[[3, 7]] = np.nan
    write_mesh_ply(ply, mesh)
    job = next(j for j in find_jobs(tmp_path / "raw") if j.name == "scene0001_00")
    with pytest.raises(DataError, match=r"scene0001_00_vh_clean_2\.ply: 2 of 244 vertices have NaN"):
        process(job)


@pytest.mark.parametrize("file, content, message", [
    ("agg", {"segGroups": {"0": {}}}, r"aggregation\.json: segGroups must be a list of groups, found dict"),
    ("agg", {"segGroups": [[1, 2]]}, r"aggregation\.json: segGroups\[0\] must be an object with 'id'"),
    ("agg", {"segGroups": [{"id": "a", "label": "chair", "segments": [7]}]},
     r"aggregation\.json: segGroups\[0\] id must be an integer, found 'a'"),
    ("agg", {"segGroups": [{"id": 1, "label": 3, "segments": [7]}]},
     r"segGroups\[0\] label must be a string"),
    ("agg", {"segGroups": [{"id": 1, "label": "chair", "segments": ["7"]}]},
     r"aggregation\.json: segGroups\[0\] segments must be a list of integers"),
    ("agg", {"segGroups": [{"id": 1, "label": "chair", "segments": 7}]},
     r"segments must be a list of integers"),
    ("segs", {"segIndices": None}, r"segs\.json: segIndices must be a list of integers \(found NoneType\)"),
    ("segs", {"segIndices": [[1], [2, 3]]}, r"segs\.json: segIndices must be a list of integers"),
    ("segs", {"segIndices": [1.5] * 244}, r"segs\.json: segIndices must be a list of integers"),
])
def test_malformed_annotation_json(tmp_path, file, content, message):
    make_raw_root(tmp_path / "raw")
    scene_dir = tmp_path / "raw/scans/scene0001_00"
    path = scene_dir / ("scene0001_00.aggregation.json" if file == "agg"
                        else "scene0001_00_vh_clean_2.0.010000.segs.json")
    path.write_text(json.dumps(content))
    job = next(j for j in find_jobs(tmp_path / "raw") if j.name == "scene0001_00")
    with pytest.raises(DataError, match=message):
        process(job)


def test_degenerate_mesh_warns(tmp_path):
    make_raw_root(tmp_path / "raw")
    mesh, _, _ = make_scene(tmp_path / "raw", "scene0001_00")
    mesh.vertices[:] = mesh.vertices[0]  # every face collapses to a point
    write_mesh_ply(tmp_path / "raw/scans/scene0001_00/scene0001_00_vh_clean_2.ply", mesh)
    job = next(j for j in find_jobs(tmp_path / "raw") if j.name == "scene0001_00")
    with pytest.warns(UserWarning, match=r"scene0001_00_vh_clean_2\.ply: \d+ of \d+ faces have zero area"):
        process(job)
