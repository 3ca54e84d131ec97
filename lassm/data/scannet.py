"""ScanNet v2 / ScanNet200 preprocessing (REFERENCE_SPEC 1.1).

Raw layout (ScanNet's own, and what :mod:`lassm.data.synthetic` writes)::

    <raw_root>/scans/<scene>/<scene>_vh_clean_2.ply                triangle mesh, RGB
    <raw_root>/scans/<scene>/<scene>_vh_clean_2.0.010000.segs.json  segIndices per vertex
    <raw_root>/scans/<scene>/<scene>.aggregation.json               segGroups (id, label, segments)
    <raw_root>/scans_test/<scene>/<scene>_vh_clean_2.ply            test scenes, mesh only
    <raw_root>/scannetv2-labels.combined.tsv                        raw_category -> id, nyu40id
    <raw_root>/scannetv2_train.txt, scannetv2_val.txt               split lists

Every scene listed in the train or val list goes to that split with labels; every other
scene goes to ``test`` without labels, as in the reference. One processed folder serves both
benchmarks: ``segment20`` is ScanNet v2's label, ``segment200`` ScanNet200's.

Like the reference, coordinates stay in the raw scan frame (the axis alignment in
``<scene>.txt`` is not applied) and superpoints are recomputed from the mesh with the
Segmentator (kThresh 0.01, segMinVerts 20); the shipped ``segIndices`` only expand the
object annotations to vertices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .io import DataError, int_array, read_json, read_mesh_ply, read_name_list
from .labels import read_label_tsv
from .mesh import vertex_normals, warn_degenerate
from .preprocess import SceneJob
from .superpoints import segment_mesh

LABEL_TSV = "scannetv2-labels.combined.tsv"
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt"}
SCAN_FOLDERS = ("scans", "scans_test")


def find_jobs(
    raw_root: str | os.PathLike,
    labels_tsv: str | os.PathLike | None = None,
    splits_dir: str | os.PathLike | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
    k_thresh: float = 0.01,
    seg_min_verts: int = 20,
) -> list[SceneJob]:
    """One job per scene folder under ``scans/`` and ``scans_test/``."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise DataError(f"raw_root: folder {raw_root} not found")
    splits_dir = Path(splits_dir) if splits_dir else raw_root
    split_of = {}
    for split, name in SPLIT_FILES.items():
        for scene in read_name_list(splits_dir / name, "scene names (ScanNet's Tasks/Benchmark split list)"):
            split_of[scene] = split
    label_map = read_label_tsv(Path(labels_tsv) if labels_tsv else raw_root / LABEL_TSV)
    scene_dirs = sorted(d for folder in SCAN_FOLDERS for d in (raw_root / folder).glob("*") if d.is_dir())
    if not scene_dirs:
        raise DataError(f"{raw_root}: no scene folders under {' or '.join(SCAN_FOLDERS)}/")
    jobs = []
    for scene_dir in scene_dirs:
        split = split_of.get(scene_dir.name, "test")
        if split not in splits:
            continue
        options = dict(k_thresh=k_thresh, seg_min_verts=seg_min_verts)
        if split != "test":
            options["label_map"] = label_map
        jobs.append(SceneJob(name=scene_dir.name, split=split, source=scene_dir, options=options))
    return jobs


def process(job: SceneJob) -> dict[str, np.ndarray]:
    """Process one ScanNet scene folder into the arrays of REFERENCE_SPEC 1.1 step 5."""
    scene = job.name
    mesh_path = job.source / f"{scene}_vh_clean_2.ply"
    mesh = read_mesh_ply(mesh_path)  # refuses NaN / infinite vertices
    arrays = {
        "coord": mesh.vertices,  # (N, 3) float32
        "color": mesh.colors,  # (N, 3) uint8
        "normal": vertex_normals(mesh.vertices, mesh.faces),  # (N, 3) float32
        "superpoint": segment_mesh(
            mesh.vertices, mesh.faces, job.options["k_thresh"], job.options["seg_min_verts"]
        ),
    }
    warn_degenerate(mesh_path, mesh.vertices, mesh.faces, arrays["superpoint"])
    if "label_map" in job.options:
        arrays.update(vertex_labels(job.source, scene, len(mesh.vertices), job.options["label_map"]))
    arrays["scene_id"] = np.array(scene)
    return arrays


def vertex_labels(
    scene_dir: Path, scene: str, num_vertices: int, label_map: dict[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """Expand the aggregation's object groups to per-vertex labels (REFERENCE_SPEC 1.1 step 4).

    Groups are applied in file order, so a later group overwrites shared vertices. A raw
    label missing from the tsv gets -1 in both label spaces (the reference's id 0 is invalid).
    """
    segs_path = scene_dir / f"{scene}_vh_clean_2.0.010000.segs.json"
    agg_path = scene_dir / f"{scene}.aggregation.json"
    seg_indices = int_array(read_json(segs_path, ("segIndices",))["segIndices"], segs_path, "segIndices")
    if len(seg_indices) != num_vertices:
        raise DataError(f"{segs_path}: {len(seg_indices)} segIndices for a mesh of {num_vertices} "
                        "vertices; expected one per vertex")
    groups = read_json(agg_path, ("segGroups",))["segGroups"]
    if not isinstance(groups, list):
        raise DataError(f"{agg_path}: segGroups must be a list of groups, found {type(groups).__name__}")
    segment20 = np.full(num_vertices, -1, np.int64)
    segment200 = np.full(num_vertices, -1, np.int64)
    instance = np.full(num_vertices, -1, np.int64)
    known_segments = np.unique(seg_indices)
    for g, group in enumerate(groups):
        group_id, label, segments = _check_group(group, g, agg_path)
        unknown = np.setdiff1d(segments, known_segments)
        if len(unknown):
            raise DataError(f"{agg_path}: group {group_id} ({label!r}) references "
                            f"segments {unknown[:5].tolist()} that are not in {segs_path.name}")
        mask = np.isin(seg_indices, segments)
        label20, label200 = label_map.get(label, (-1, -1))
        segment20[mask] = label20
        segment200[mask] = label200
        instance[mask] = group_id
    return {"segment20": segment20, "segment200": segment200, "instance": instance}


def _check_group(group, g: int, agg_path: Path) -> tuple[int, str, np.ndarray]:
    """``segGroups[g]`` as (id, label, segments), or a DataError saying what was expected."""
    if not isinstance(group, dict) or not {"id", "label", "segments"} <= group.keys():
        raise DataError(f"{agg_path}: segGroups[{g}] must be an object with 'id', 'label' and 'segments', "
                        f"found {str(group)[:80]}")
    group_id, label = group["id"], group["label"]
    if type(group_id) is not int or not -(2**63) <= group_id < 2**63:
        raise DataError(f"{agg_path}: segGroups[{g}] id must be an integer, found {group_id!r}")
    if not isinstance(label, str):
        raise DataError(f"{agg_path}: segGroups[{g}] label must be a string, found {label!r}")
    return group_id, label, int_array(group["segments"], agg_path, f"segGroups[{g}] segments")
