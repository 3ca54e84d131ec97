"""Readers name the bad file; writers are atomic."""

from __future__ import annotations

import numpy as np
import pytest

from lassm.data import io
from lassm.data.io import DataError, Mesh


def small_mesh(n=10):
    rng = np.random.default_rng(0)
    return Mesh(rng.random((n, 3), dtype=np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8),
                np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]], np.int64))


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, binary):
    mesh = small_mesh()
    io.write_mesh_ply(tmp_path / "m.ply", mesh, binary=binary)
    back = io.read_mesh_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.colors, mesh.colors)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    assert [p.name for p in tmp_path.iterdir()] == ["m.ply"]  # no temporary file left


def test_save_npz_loads_as_savez_compressed(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"masks": rng.random((5, 1000)) < 0.1, "coord": rng.random((1000, 3), dtype=np.float32),
              "names": np.array(["chair", "table"]), "scalar": np.array(3.5), "empty": np.zeros((0, 3))}
    io.save_npz(tmp_path / "fast.npz", **arrays)
    np.savez_compressed(tmp_path / "numpy.npz", **arrays)
    with np.load(tmp_path / "fast.npz", allow_pickle=False) as fast, np.load(tmp_path / "numpy.npz") as ref:
        assert fast.files == ref.files
        for key in ref.files:
            assert fast[key].dtype == ref[key].dtype and fast[key].shape == ref[key].shape
            assert fast[key].tobytes() == ref[key].tobytes()


def test_ply_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.ply: mesh file not found"):
        io.read_mesh_ply(tmp_path / "nope.ply")
    (tmp_path / "garbage.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vert")
    with pytest.raises(DataError, match=r"garbage\.ply: unreadable or truncated PLY"):
        io.read_mesh_ply(tmp_path / "garbage.ply")
    mesh = small_mesh()
    mesh.faces = np.array([[0, 1, 99]])
    io.write_mesh_ply(tmp_path / "bad_index.ply", mesh)
    with pytest.raises(DataError, match=r"bad_index\.ply: face indices outside 0\.\.9"):
        io.read_mesh_ply(tmp_path / "bad_index.ply")


def test_ply_without_colours(tmp_path):
    from plyfile import PlyData, PlyElement

    v = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "xyz.ply"))
    with pytest.raises(DataError, match=r"xyz\.ply: vertex properties \['red', 'green', 'blue'\] missing"):
        io.read_mesh_ply(tmp_path / "xyz.ply")


def test_json_errors(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(DataError, match=r"a\.json: not valid JSON"):
        io.read_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"x": 1}')
    with pytest.raises(DataError, match=r"b\.json: missing key\(s\) \['segIndices'\]"):
        io.read_json(tmp_path / "b.json", ("segIndices",))


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_scene_is_atomic(tmp_path, monkeypatch):
    scene = tmp_path / "train" / "s0"
    io.write_scene(scene, {"coord": np.zeros((4, 3), np.float32), "scene_id": np.array("s0")})
    assert io.scene_is_done(scene)
    loaded = io.load_scene(scene)
    assert str(loaded["scene_id"]) == "s0" and loaded["coord"].shape == (4, 3)

    calls = []

    def failing_save(path, value):  # dies after the first array of the rewrite
        if calls:
            raise OSError("disk full")
        calls.append(path)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.asarray(value))

    monkeypatch.setattr(io.np, "save", failing_save)
    with pytest.raises(OSError):
        io.write_scene(scene, {"coord": np.ones((2, 3)), "color": np.ones((2, 3))})
    monkeypatch.undo()
    assert io.load_scene(scene)["coord"].shape == (4, 3)  # the old scene is intact
    assert sorted(p.name for p in scene.parent.iterdir()) == ["s0"]  # no temporary folder


def test_load_scene_refuses_unfinished(tmp_path):
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "coord.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"not a finished processed scene"):
        io.load_scene(tmp_path / "s")


@pytest.mark.parametrize("text", [False, True])
def test_non_triangle_faces_rejected(tmp_path, text):
    from plyfile import PlyData, PlyElement

    v = np.zeros(4, dtype=[(k, "f4") for k in "xyz"] + [(k, "u1") for k in ("red", "green", "blue")])
    f = np.empty(2, dtype=[("vertex_indices", "O")])
    f["vertex_indices"] = [np.array([0, 1, 2], np.int32), np.array([0, 1, 2, 3], np.int32)]
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")], text=text).write(
        str(tmp_path / "quad.ply"))
    with pytest.raises(DataError, match=r"quad\.ply: only triangle faces are supported"):
        io.read_mesh_ply(tmp_path / "quad.ply")


def test_written_files_are_readable_by_others(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.write_scene(tmp_path / "s", {"coord": np.zeros((1, 3))})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o755


def test_non_finite_vertices_refused(tmp_path):
    mesh = small_mesh()
    mesh.vertices[[1, 4]] = [np.nan, 0, np.inf]
    io.write_mesh_ply(tmp_path / "nan.ply", mesh)
    with pytest.raises(DataError, match=r"nan\.ply: 2 of 10 vertices have NaN or infinite coordinates"):
        io.read_mesh_ply(tmp_path / "nan.ply")
    kept = io.read_mesh_ply(tmp_path / "nan.ply", finite=False)  # for readers that drop them
    assert np.isnan(kept.vertices[1, 0])


def test_json_odd_inputs(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"deep\.json: not valid JSON"):
        io.read_json(tmp_path / "deep.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match=r"bin\.json: not valid JSON"):
        io.read_json(tmp_path / "bin.json")
    (tmp_path / "utf16.json").write_bytes('{"a": 1}'.encode("utf-16"))
    assert io.read_json(tmp_path / "utf16.json") == {"a": 1}


@pytest.mark.parametrize("value, found", [
    (None, "NoneType"), ({"a": 1}, "dict"), ([1, 2.5], "float64"), ([[1], [2, 3]], "list"),
    ([True, False], "bool"), ([2**70], "object"), ([1, "2"], "<U21"),
])
def test_int_array_refuses_non_integers(value, found):
    with pytest.raises(DataError, match=rf"f\.json: ids must be a list of integers \(found .*{found}"):
        io.int_array(value, "f.json", "ids")
    assert io.int_array([], "f.json", "ids").dtype == np.int64


def _race(tmp_path, writers=4, rounds=15, timeout=60.0):
    """Writers replace one scene over and over while a reader checks every load is one whole scene."""
    import threading

    scene = tmp_path / "split" / "s0"
    io.write_scene(scene, {"coord": np.zeros((3, 3)), "color": np.zeros((3, 3))})
    errors, seen, stop = [], set(), threading.Event()

    def write(w):
        try:
            for r in range(rounds):
                value = float(w * 1000 + r)
                io.write_scene(scene, {"coord": np.full((50, 3), value), "color": np.full((50, 3), value)})
        except Exception as err:  # noqa: BLE001 - any failure is the test's finding
            errors.append(err)

    def read():
        while not stop.is_set():
            try:
                arrays = io.load_scene(scene)
                assert np.array_equal(arrays["coord"], arrays["color"]), "arrays from two writers"
                seen.add(float(arrays["coord"].flat[0]))
            except Exception as err:  # noqa: BLE001
                errors.append(err)
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    stop.set()
    reader.join(timeout)
    assert not any(t.is_alive() for t in [*threads, reader]), "writers did not finish in time"
    return scene, errors, seen


def test_concurrent_writers_keep_a_complete_scene(tmp_path):
    scene, errors, seen = _race(tmp_path)
    assert errors == []
    final = io.load_scene(scene)
    assert np.array_equal(final["coord"], final["color"]) and final["coord"].shape == (50, 3)
    assert sorted(p.name for p in scene.parent.iterdir()) == ["s0"]  # no temporary folders left
    assert len(seen) > 1  # the reader saw the scene change


def test_concurrent_writers_without_atomic_exchange(tmp_path, monkeypatch):
    """Filesystems without renameat2(RENAME_EXCHANGE): move aside and rename in, retrying races."""
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    scene, errors, _ = _race(tmp_path)
    # a reader may briefly find no scene between the two renames; writers must never fail
    assert [e for e in errors if not isinstance(e, DataError | FileNotFoundError | AssertionError)] == []
    final = io.load_scene(scene)
    assert np.array_equal(final["coord"], final["color"]) and final["coord"].shape == (50, 3)
    assert sorted(p.name for p in scene.parent.iterdir()) == ["s0"]
