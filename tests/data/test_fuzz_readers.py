"""Fuzzing the readers: random and mutated files may only ever raise the package's DataError.

Each property writes a file, calls one reader and accepts success or :class:`DataError`; any other
exception type (IndexError, struct.error, ...) is a reader bug. Example counts are kept small so
the whole file runs in well under a minute on two CPUs.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp
from plyfile import PlyData, PlyElement
from pypcd4 import Encoding, PointCloud

from lassm.data import io, scans
from lassm.data.io import DataError, Mesh
from lassm.data.mosd import read_pcd
from lassm.data.scannet import vertex_labels

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # keep hypothesis' caches out of the working tree
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "lassm-hypothesis")
# LASSM_FUZZ_EXAMPLES=2000 for a longer hunt; the default keeps CI quick
FUZZ = settings(max_examples=int(os.environ.get("LASSM_FUZZ_EXAMPLES", 60)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- seed files


def _mesh() -> Mesh:
    rng = np.random.default_rng(0)
    return Mesh(rng.random((6, 3), dtype=np.float32), rng.integers(0, 256, (6, 3)).astype(np.uint8),
                np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]], np.int64))


def _seed_bytes() -> dict[str, bytes]:
    """Small valid files of every format, to mutate."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        io.write_mesh_ply(d / "bin.ply", _mesh())
        io.write_mesh_ply(d / "text.ply", _mesh(), binary=False)
        xyz = np.zeros(4, dtype=[(k, "f4") for k in "xyz"])
        PlyData([PlyElement.describe(xyz, "vertex")], text=True).write(str(d / "xyz.ply"))
        points = np.c_[np.random.default_rng(1).random((5, 3)), np.full(5, 0x00FF8040)]
        fields, types = ("x", "y", "z", "rgb"), (np.float32, np.float32, np.float32, np.uint32)
        cloud = PointCloud.from_points(points, fields, types)
        cloud.save(d / "ascii.pcd", encoding=Encoding.ASCII)
        cloud.save(d / "binary.pcd", encoding=Encoding.BINARY)
        np.save(d / "cloud.npy", np.c_[np.random.default_rng(2).random((5, 3)), np.full((5, 3), 100.0)])
        for f in d.iterdir():
            out[f.name] = f.read_bytes()
    return out


SEEDS = _seed_bytes()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 overwrite, 1 insert, 2 delete, 3 truncate."""
    b = bytearray(data)
    for kind, pos, value in edits:
        if not b:
            break
        pos %= len(b)
        if kind == 0:
            b[pos] = value
        elif kind == 1:
            b[pos:pos] = bytes([value])
        elif kind == 2:
            del b[pos]
        else:
            del b[pos:]
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 255)), max_size=6)


def _only_data_errors(reader, name: str, data: bytes) -> None:
    """Write ``data`` to a file called ``name`` and call ``reader`` on it."""
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(d) / name
        path.write_bytes(data)
        try:
            reader(path)
        except DataError as err:
            assert path.name in str(err), f"the error does not name the file: {err}"


def _scan_readers(path: Path):
    scans.read_raw(path)
    scans.read_scan(path)


# ----------------------------------------------------------------------------- properties


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), edits=EDITS)
def test_mutated_scans_raise_only_data_errors(seed, edits):
    suffix = Path(seed).suffix
    _only_data_errors(_scan_readers, f"scan{suffix}", _mutate(SEEDS[seed], edits))


@FUZZ
@given(seed=st.sampled_from(["bin.ply", "text.ply", "xyz.ply"]), edits=EDITS)
def test_mutated_meshes_raise_only_data_errors(seed, edits):
    data = _mutate(SEEDS[seed], edits)
    _only_data_errors(io.read_mesh_ply, "mesh.ply", data)
    _only_data_errors(lambda p: io.read_mesh_ply(p, require_faces=False, finite=False), "mesh.ply", data)


@FUZZ
@given(seed=st.sampled_from(["ascii.pcd", "binary.pcd"]), edits=EDITS)
def test_mutated_pcds_raise_only_data_errors(seed, edits):
    _only_data_errors(read_pcd, "cloud.pcd", _mutate(SEEDS[seed], edits))


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".ply", ".pcd", ".npy", ".json"]),
       magic=st.sampled_from([b"", b"ply\n", b"# .PCD v0.7\n", b"\x93NUMPY", b"{"]))
def test_random_bytes_raise_only_data_errors(data, suffix, magic):
    data = magic + data
    if suffix == ".json":
        _only_data_errors(io.read_json, "x.json", data)
    else:
        _only_data_errors(_scan_readers, f"scan{suffix}", data)
        if suffix == ".ply":
            _only_data_errors(io.read_mesh_ply, "mesh.ply", data)
        if suffix == ".pcd":
            _only_data_errors(read_pcd, "cloud.pcd", data)


ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                    hnp.boolean_dtypes(), hnp.complex_number_dtypes(), st.just(np.dtype("U3"))),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7),
)


def _save_npy(array: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "a.npy", array)
        return (Path(d) / "a.npy").read_bytes()


@FUZZ
@given(array=ARRAYS)
def test_random_arrays_raise_only_data_errors(array):
    _only_data_errors(_scan_readers, "scan.npy", _save_npy(array))


@FUZZ
@given(coord=hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.just(3)),
                        elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       color=st.one_of(st.none(), hnp.arrays(np.float64, 3, elements=st.floats(-2, 300))))
def test_random_clouds_raise_only_data_errors(coord, color):
    array = coord if color is None else np.c_[coord, np.tile(color, (len(coord), 1))]
    _only_data_errors(_scan_readers, "cloud.npy", _save_npy(array))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
GROUP = st.fixed_dictionaries({"id": JSON | st.integers(0, 3), "label": JSON | st.just("chair"),
                               "segments": JSON | st.lists(st.integers(0, 3), max_size=3)})


@FUZZ
@given(seg=JSON | st.lists(st.integers(0, 3), min_size=4, max_size=4),
       groups=JSON | st.lists(GROUP | JSON, max_size=3))
def test_random_aggregations_raise_only_data_errors(seg, groups):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "s_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": seg}))
        (d / "s.aggregation.json").write_text(json.dumps({"segGroups": groups}))
        try:
            vertex_labels(d, "s", 4, {"chair": (5, 2)})
        except DataError as err:
            assert ".json" in str(err)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_files_are_valid(name):
    """The unmutated seeds read without error, so mutations start from working files."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(SEEDS[name])
        scans.read_scan(path)
