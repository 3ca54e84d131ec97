"""File formats and safe writing: PLY meshes, JSON, processed scene folders.

Every reader raises :class:`DataError` naming the file and what was expected; every writer
writes to a temporary name first and renames, so an interrupted run never leaves a
half-written file or scene folder behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElementParseError


class DataError(ValueError):
    """Bad input data: the message names the file or parameter and what was expected."""


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colours."""

    vertices: np.ndarray  # (N, 3) float32 metres
    colors: np.ndarray  # (N, 3) uint8 RGB
    faces: np.ndarray  # (M, 3) int64 vertex indices


# ----------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; written files should not be
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj))


def read_json(path: str | os.PathLike, required_keys: tuple[str, ...] = ()) -> dict:
    """Read a JSON object and check that ``required_keys`` are present."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object at the top level")
    missing = [k for k in required_keys if k not in obj]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; expected {list(required_keys)}")
    return obj


def read_name_list(path: str | os.PathLike, what: str) -> list[str]:
    """One name per line (blank lines skipped); ``what`` describes the file in errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {what}, one per line")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- PLY meshes

_TRIANGLE_LISTS = {"face": {"vertex_indices": 3, "vertex_index": 3}}


def read_mesh_ply(path: str | os.PathLike, require_faces: bool = True) -> Mesh:
    """Read a PLY triangle mesh (x, y, z, red, green, blue vertex properties).

    ScanNet's ``*_vh_clean_2.ply`` and ScanNet++'s ``mesh_aligned_0.05.ply`` both fit. A
    truncated file, missing vertex properties, non-triangle faces or (with ``require_faces``)
    a mesh without faces raise :class:`DataError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    try:
        try:  # fast path: all faces are triangles, so the face block is read as one array
            ply = PlyData.read(str(path), known_list_len=_TRIANGLE_LISTS)
        except PlyElementParseError as err:
            if "unexpected list length" in str(err):
                raise DataError(f"{path}: only triangle faces are supported") from err
            raise
        except KeyError:  # another list property: let plyfile parse row by row
            ply = PlyData.read(str(path))
    except DataError:
        raise
    except Exception as err:  # plyfile raises several types for broken files
        raise DataError(f"{path}: unreadable or truncated PLY ({type(err).__name__}: {err})") from err
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise DataError(f"{path}: PLY has no 'vertex' element (found {names})")
    vertex = ply["vertex"].data
    props = vertex.dtype.names or ()
    needed = ("x", "y", "z", "red", "green", "blue")
    missing = [p for p in needed if p not in props]
    if missing:
        raise DataError(f"{path}: vertex properties {missing} missing; expected {list(needed)}")
    vertices = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float32)
    colors = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1)
    if colors.dtype != np.uint8:
        raise DataError(f"{path}: vertex colours must be uint8 (found {colors.dtype})")
    faces = np.zeros((0, 3), np.int64)
    if "face" in names and len(ply["face"].data):
        face_data = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in face_data.dtype.names else "vertex_index"
        if key not in face_data.dtype.names:
            raise DataError(f"{path}: face element has no 'vertex_indices' property")
        lists = face_data[key]  # (M, 3) from the fast path, else an object array of lists
        if lists.dtype == object:
            if any(len(f) != 3 for f in lists):
                raise DataError(f"{path}: only triangle faces are supported")
            lists = np.stack(lists)
        faces = lists.astype(np.int64)
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise DataError(f"{path}: face indices outside 0..{len(vertices) - 1}")
    if require_faces and len(faces) == 0:
        raise DataError(f"{path}: mesh has no faces; a triangle mesh is required for superpoints")
    if len(vertices) == 0:
        raise DataError(f"{path}: mesh has no vertices")
    return Mesh(vertices=vertices, colors=colors.astype(np.uint8), faces=faces)


def write_mesh_ply(path: str | os.PathLike, mesh: Mesh, binary: bool = True) -> None:
    """Write a mesh the way ScanNet ships them: float xyz, uchar RGBA, uchar-counted int face lists.

    Binary files are written as two numpy blocks: plyfile writes list properties row by row,
    which dominated the time of writing a 200k-vertex room.
    """
    n, m = len(mesh.vertices), len(mesh.faces)
    vertex = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
    for i, k in enumerate("xyz"):
        vertex[k] = mesh.vertices[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        vertex[k] = mesh.colors[:, i]
    vertex["alpha"] = 255
    face = np.empty(m, dtype=[("count", "u1"), ("vertex_indices", "<i4", (3,))])
    face["count"] = 3
    face["vertex_indices"] = mesh.faces
    header = "\n".join([
        "ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        f"element vertex {n}", "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue", "property uchar alpha",
        f"element face {m}", "property list uchar int vertex_indices", "end_header", "",
    ])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        if binary:
            f.write(vertex.tobytes())
            f.write(face.tobytes())
        else:
            for row in vertex:
                f.write((" ".join(str(x) for x in row.tolist()) + "\n").encode())
            np.savetxt(f, np.column_stack([face["count"], mesh.faces]), fmt="%d")


# ----------------------------------------------------------------------------- scene folders

SCENE_DONE = ".done"  # marker written last inside a finished scene folder


def write_scene(scene_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write one processed scene as ``<key>.npy`` files, atomically.

    The arrays go into a hidden temporary folder beside ``scene_dir`` which is renamed into
    place at the end, so a crash leaves either the old scene or the complete new one.
    """
    scene_dir = Path(scene_dir)
    scene_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{scene_dir.name}.", dir=scene_dir.parent))
    try:
        for key, value in arrays.items():
            np.save(tmp / f"{key}.npy", value)
        (tmp / SCENE_DONE).write_text("")
        os.chmod(tmp, 0o755)  # mkdtemp makes the folder private
        if scene_dir.exists():
            shutil.rmtree(scene_dir)
        os.replace(tmp, scene_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return scene_dir


def scene_is_done(scene_dir: str | os.PathLike) -> bool:
    return (Path(scene_dir) / SCENE_DONE).is_file()


def load_scene(scene_dir: str | os.PathLike, keys: tuple[str, ...] | None = None) -> dict:
    """Load ``<key>.npy`` arrays of a processed scene (all of them when ``keys`` is None)."""
    scene_dir = Path(scene_dir)
    if not scene_is_done(scene_dir):
        raise DataError(f"{scene_dir}: not a finished processed scene (no {SCENE_DONE} marker)")
    files = sorted(scene_dir.glob("*.npy")) if keys is None else [scene_dir / f"{k}.npy" for k in keys]
    out = {}
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: missing array; expected keys {keys}")
        out[f.stem] = np.load(f, allow_pickle=False)
    return out
