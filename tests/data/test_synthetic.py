"""Synthetic rooms: determinism, ScanNet raw-format validity, label/segment consistency."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lassm.data import scannet
from lassm.data.io import DataError, read_mesh_ply
from lassm.data.labels import CLASS_LABELS_20, CLASS_LABELS_200, read_label_tsv
from lassm.data.superpoints import segment_mesh
from lassm.data.synthetic import (
    ROOM_TYPES,
    generate_room,
    room_seed,
    write_label_tsv,
    write_room,
    write_synthetic_scannet,
)

THING_CLASSES = CLASS_LABELS_20[2:]  # the 18 ScanNet instance classes


def scene_files(raw_root, scene):
    folder = raw_root / "scans" / scene
    return [folder / f"{scene}_vh_clean_2.ply", folder / f"{scene}_vh_clean_2.0.010000.segs.json",
            folder / f"{scene}.aggregation.json", folder / f"{scene}.txt"]


@pytest.fixture(scope="module")
def small_rooms():
    return [generate_room(seed, "small") for seed in range(6)]


def test_same_seed_gives_identical_arrays_and_files(tmp_path):
    a, b = generate_room(7, "small"), generate_room(7, "small")
    for x, y in ((a.mesh.vertices, b.mesh.vertices), (a.mesh.colors, b.mesh.colors),
                 (a.mesh.faces, b.mesh.faces), (a.instance, b.instance)):
        np.testing.assert_array_equal(x, y)
    assert a.objects == b.objects
    write_room(a, tmp_path / "a", "synth0007_00")
    write_room(b, tmp_path / "b", "synth0007_00")
    files_a = scene_files(tmp_path / "a", "synth0007_00")
    files_b = scene_files(tmp_path / "b", "synth0007_00")
    for fa, fb in zip(files_a, files_b, strict=True):
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    c = generate_room(8, "small")
    va, vc = a.mesh.vertices, c.mesh.vertices
    assert va.shape != vc.shape or not np.array_equal(va, vc)


def test_mesh_is_valid(small_rooms):
    for room in small_rooms:
        v, f = room.mesh.vertices, room.mesh.faces
        assert v.dtype == np.float32 and room.mesh.colors.dtype == np.uint8 and f.dtype == np.int64
        assert np.isfinite(v).all()
        assert f.min() >= 0 and f.max() < len(v)
        assert (f[:, 0] != f[:, 1]).all() and (f[:, 1] != f[:, 2]).all() and (f[:, 0] != f[:, 2]).all()
        area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
        assert area.min() > 0
        assert np.bincount(f.ravel(), minlength=len(v)).min() > 0  # no stray vertices
        assert 2_000 <= len(v) <= 25_000
        assert room.instance.shape == (len(v),)
        ids = [i for i, _ in room.objects]
        assert ids == list(range(len(ids)))  # 0-based object ids, as in ScanNet
        assert set(np.unique(room.instance)) <= set(ids) | {-1}
        assert all((room.instance == i).any() for i in ids)  # no empty object


def test_scanner_effects(small_rooms):
    unlabelled = 0
    for room in small_rooms:
        v, f = room.mesh.vertices.astype(np.float64), room.mesh.faces
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        # Undersides of furniture are never seen; the floor is the lowest, upward-facing surface.
        assert (n[:, 2] < -0.8).mean() < 0.002
        labels = dict(room.objects)
        floor = np.isin(room.instance, [i for i, name in labels.items() if name == "floor"])
        assert np.abs(v[floor, 2]).max() < 0.02  # a few millimetres of noise, not centimetres
        assert np.abs(v[floor, 2]).max() > 0.0
        unlabelled += (room.instance == -1).sum()
    assert unlabelled > 0  # some clutter is left unannotated, as in ScanNet


def test_every_instance_class_appears_over_six_rooms(small_rooms, tmp_path):
    write_label_tsv(tmp_path / "labels.tsv", {})
    table = read_label_tsv(tmp_path / "labels.tsv")
    seen = set()
    for room in small_rooms:
        for _, label in room.objects:
            assert label in table, label
            index20, _ = table[label]
            if index20 >= 0:
                seen.add(CLASS_LABELS_20[index20])
    assert set(THING_CLASSES) <= seen, set(THING_CLASSES) - seen
    assert {"wall", "floor"} <= seen


def test_label_tsv_ids_follow_scannet(tmp_path):
    write_label_tsv(tmp_path / "labels.tsv", {"chair": 3})
    with open(tmp_path / "labels.tsv", newline="") as f:
        rows = {row["raw_category"]: row for row in csv.DictReader(f, delimiter="\t")}
    columns = set(next(iter(rows.values())))
    assert {"id", "raw_category", "category", "count", "nyu40id", "nyu40class"} <= columns
    assert (rows["chair"]["id"], rows["chair"]["nyu40id"], rows["chair"]["count"]) == ("2", "5", "3")
    assert rows["couch"]["nyu40class"] == "sofa"
    table = read_label_tsv(tmp_path / "labels.tsv")
    assert table["couch"] == (CLASS_LABELS_20.index("sofa"), CLASS_LABELS_200.index("couch"))
    assert table["trash can"][0] == CLASS_LABELS_20.index("otherfurniture")


def test_written_room_is_scannet_raw_format(tmp_path):
    room = generate_room(4, "small")
    folder = write_room(room, tmp_path, "synth0004_00")
    ply, segs_path, agg_path, txt = scene_files(tmp_path, "synth0004_00")
    assert folder == ply.parent
    mesh = read_mesh_ply(ply)
    np.testing.assert_array_equal(mesh.vertices, room.mesh.vertices)
    np.testing.assert_array_equal(mesh.colors, room.mesh.colors)
    np.testing.assert_array_equal(mesh.faces, room.mesh.faces)
    segs, agg = json.loads(segs_path.read_text()), json.loads(agg_path.read_text())
    assert {"params", "sceneId", "segIndices"} <= set(segs) and segs["sceneId"] == "synth0004_00"
    assert {"sceneId", "appId", "segGroups", "segmentsFile"} <= set(agg)
    # ScanNet's segs come from its Segmentator on this very mesh.
    np.testing.assert_array_equal(segs["segIndices"], segment_mesh(mesh.vertices, mesh.faces, 0.01, 20))
    assert [(g["id"], g["label"]) for g in agg["segGroups"]] == room.objects
    assert all(g["objectId"] == g["id"] for g in agg["segGroups"])
    info = dict(line.split(" = ", 1) for line in txt.read_text().splitlines())
    assert info["axisAlignment"] == "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"
    assert info["sceneType"] == "Kitchen"


def test_groups_are_exact_unions_of_segments(tmp_path):
    for seed in (0, 2):  # a bedroom and a bathroom
        room = generate_room(seed, "small")
        write_room(room, tmp_path, f"s{seed}")
        _, segs_path, agg_path, _ = scene_files(tmp_path, f"s{seed}")
        seg = np.asarray(json.loads(segs_path.read_text())["segIndices"])
        groups = json.loads(agg_path.read_text())["segGroups"]
        owner = {}
        expanded = np.full(len(seg), -1)
        for g in groups:
            assert g["segments"], g["label"]
            for s in g["segments"]:
                assert s not in owner, f"segment {s} in groups {owner.get(s)} and {g['id']}"
                owner[s] = g["id"]
            expanded[np.isin(seg, g["segments"])] = g["id"]
        np.testing.assert_array_equal(expanded, room.instance)  # covers each object, nothing else


def test_dataset_is_read_by_scannet_preprocessing(tmp_path):
    names = write_synthetic_scannet(tmp_path, num_rooms=3, seed=5, size="small")
    assert names == ["synth0000_00", "synth0001_00", "synth0002_00"]
    train = (tmp_path / "scannetv2_train.txt").read_text().split()
    val = (tmp_path / "scannetv2_val.txt").read_text().split()
    assert len(val) >= 1 and sorted(train + val) == names and not set(train) & set(val)
    jobs = scannet.find_jobs(tmp_path)
    assert sorted(j.name for j in jobs) == names and {j.split for j in jobs} <= {"train", "val"}
    arrays = scannet.process(next(j for j in jobs if j.name == "synth0001_00"))
    info = _info(tmp_path, "synth0001_00")  # room 1 of seed 5: its own seed, the next room type
    assert (int(info["synthSeed"]), info["synthRoomType"]) == (room_seed(5, 1), ROOM_TYPES[(5 + 1) % 5])
    room = generate_room(room_seed(5, 1), "small", ROOM_TYPES[1])
    np.testing.assert_array_equal(arrays["instance"], room.instance)
    thing = arrays["segment20"][arrays["instance"] >= 0]
    assert (thing >= 0).mean() > 0.9  # nearly all annotated vertices get a ScanNet20 class
    assert (arrays["segment200"][arrays["instance"] >= 0] >= 0).all()


def _info(raw_root, scene):
    return dict(line.split(" = ", 1) for line in scene_files(raw_root, scene)[3].read_text().splitlines())


def _seed_of(raw_root, scene):
    return int(_info(raw_root, scene)["synthSeed"])


def test_rerun_skips_finished_rooms_and_workers_agree(tmp_path):
    write_synthetic_scannet(tmp_path / "one", num_rooms=2, seed=1, size="small", workers=1)
    ply = scene_files(tmp_path / "one", "synth0001_00")[0]
    stamp = ply.stat().st_mtime_ns
    write_synthetic_scannet(tmp_path / "one", num_rooms=2, seed=1, size="small", workers=1)
    assert ply.stat().st_mtime_ns == stamp  # complete rooms are not rewritten
    write_synthetic_scannet(tmp_path / "two", num_rooms=2, seed=1, size="small", workers=2)
    for scene in ("synth0000_00", "synth0001_00"):
        one, two = scene_files(tmp_path / "one", scene), scene_files(tmp_path / "two", scene)
        for a, b in zip(one, two, strict=True):
            assert a.read_bytes() == b.read_bytes(), a.name
    write_synthetic_scannet(tmp_path / "one", num_rooms=2, seed=2, size="small")  # other seed: regenerated
    assert _seed_of(tmp_path / "one", "synth0001_00") != _seed_of(tmp_path / "two", "synth0001_00")


def test_full_density_matches_scannet_vh_clean_2():
    room = generate_room(0, "full")
    v, f = room.mesh.vertices, room.mesh.faces
    assert 50_000 <= len(v) <= 300_000
    edges = np.linalg.norm(v[f] - v[np.roll(f, 1, axis=1)], axis=2)
    assert 0.01 <= np.median(edges) <= 0.03
    spacing, _ = cKDTree(v).query(v, k=2)
    assert 0.01 <= np.median(spacing[:, 1]) <= 0.03


@pytest.mark.parametrize("kwargs, name", [
    (dict(size="huge"), "size"), (dict(num_rooms=0), "num_rooms"), (dict(seed=-1), "seed"),
    (dict(val_fraction=1.5), "val_fraction"), (dict(workers=0), "workers"),
])
def test_bad_dataset_parameters(tmp_path, kwargs, name):
    with pytest.raises(DataError, match=name):
        write_synthetic_scannet(tmp_path, **kwargs)
    assert not (tmp_path / "scans").exists()


def test_bad_room_parameters():
    with pytest.raises(DataError, match="size"):
        generate_room(0, "medium")
    with pytest.raises(DataError, match="room_type"):
        generate_room(0, "small", "garage")
    with pytest.raises(DataError, match="seed"):
        generate_room(1.5, "small")


def test_leftover_rooms_warn_and_stay(tmp_path):
    write_synthetic_scannet(tmp_path, num_rooms=3, seed=0, size="small")
    with pytest.warns(UserWarning, match=r"synth0002_00"):
        write_synthetic_scannet(tmp_path, num_rooms=2, seed=0, size="small")
    assert (tmp_path / "scans" / "synth0002_00").is_dir()  # nothing deleted
