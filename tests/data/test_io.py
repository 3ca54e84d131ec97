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
