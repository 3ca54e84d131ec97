"""ScanNet++ v2: raw scans -> processed scenes (REFERENCE_SPEC 1.2) -> training chunks (1.3).

Raw layout read here::

    <raw_root>/splits/{nvs_sem_train,nvs_sem_val,sem_test}.txt          scene ids per split
    <raw_root>/metadata/semantic_benchmark/{top100.txt,map_benchmark.csv}
    <raw_root>/data/<scene>/scans/{mesh_aligned_0.05.ply,segments.json,segments_anno.json}

A processed scene holds coord, color, normal, superpoint and (train/val) ``segment`` and
``instance`` of shape (N, 3): up to three overlapping labels per vertex, column 0 being the
smallest instance. Training uses grid-sampled 6 m x 6 m chunks of the train scenes
(:func:`chunk_scenes`).
"""

from __future__ import annotations

import csv
import os
import shutil
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np

from ..progress import tqdm
from .io import (
    DataError,
    int_array,
    load_scene,
    read_json,
    read_mesh_ply,
    read_name_list,
    scene_is_done,
    write_json,
    write_scene,
)
from .labels import CLASS_LABELS_PP
from .mesh import vertex_normals, warn_degenerate
from .preprocess import SceneJob
from .superpoints import segment_mesh
from .workers import process_pool

SPLIT_FILES = {"train": "nvs_sem_train.txt", "val": "nvs_sem_val.txt", "test": "sem_test.txt"}
MESH_FILE = "mesh_aligned_0.05.ply"
SEGMENTS_FILE = "segments.json"
ANNO_FILE = "segments_anno.json"
CLASS_FILE = "top100.txt"
MAP_FILE = "map_benchmark.csv"
MAP_COLUMNS = ("class", "semantic_map_to")  # source class name, benchmark class it maps to
MAX_LABELS = 3  # labels kept per vertex (1.2 step 3)

# Cells pandas < 2 reads as NaN, i.e. "no mapping": the reference reads the csv with pandas.
# pandas >= 2 also reads "None" as NaN (pandas issue 52493), which would turn the reference's
# "dropped" classes into self-mapped ones; we follow the spec ("None" = dropped). Both agree
# whenever a "None" class is not itself one of the 100 classes.
_NA_CELLS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"}


# ----------------------------------------------------------------------------- metadata


def read_label_map(path: str | os.PathLike) -> dict[str, str]:
    """Raw class name -> benchmark class name from ``map_benchmark.csv`` (1.2 "Label map").

    Empty (NaN) ``semantic_map_to`` keeps the name, "None" drops the class, anything else
    renames it. Row order matters as in the reference: a later rename overrides, a later
    NaN row does not replace an existing entry, a "None" row removes nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map not found; expected ScanNet++'s {MAP_FILE}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MAP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: columns {missing} missing; "
                            f"expected at least {list(MAP_COLUMNS)}")
        mapping: dict[str, str] = {}
        for row in reader:
            name, target = row["class"], row["semantic_map_to"] or ""
            if name in _NA_CELLS:
                continue
            if target in _NA_CELLS:
                mapping.setdefault(name, name)
            elif target != "None":
                mapping[name] = target
    return mapping


def read_label_index(meta_dir: str | os.PathLike) -> dict[str, int]:
    """Raw annotation label -> semantic index 0..99 (labels not in the map are ignored)."""
    meta_dir = Path(meta_dir)
    classes = read_name_list(meta_dir / CLASS_FILE, "the 100 ScanNet++ benchmark class names")
    if tuple(classes) != CLASS_LABELS_PP:
        pairs = zip(classes, CLASS_LABELS_PP, strict=False)
        bad = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        where = f"{len(classes)} names" if bad is None else f"line {bad + 1} is {classes[bad]!r}"
        raise DataError(f"{meta_dir / CLASS_FILE}: expected the 100 classes of CLASS_LABELS_PP in "
                        f"order ({where})")
    class_index = {name: i for i, name in enumerate(classes)}
    mapping = read_label_map(meta_dir / MAP_FILE)
    return {raw: class_index[to] for raw, to in mapping.items() if to in class_index}


# ----------------------------------------------------------------------------- jobs


def find_jobs(raw_root: str | os.PathLike, splits=("train", "val", "test")) -> list[SceneJob]:
    """One job per scene listed in the split files; train/val jobs carry the label index."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise DataError(f"raw_root: {raw_root} is not a directory (expected the ScanNet++ root)")
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in splits if s not in SPLIT_FILES]
    if unknown:
        raise DataError(f"splits: unknown split(s) {unknown}; expected some of {list(SPLIT_FILES)}")
    labelled = any(s != "test" for s in splits)
    label_index = read_label_index(raw_root / "metadata" / "semantic_benchmark") if labelled else {}
    jobs = []
    for split in splits:
        names = read_name_list(raw_root / "splits" / SPLIT_FILES[split], f"{split} scene ids")
        for name in dict.fromkeys(names):  # duplicates would only redo the same scene
            scans = raw_root / "data" / name / "scans"
            needed = [MESH_FILE] if split == "test" else [MESH_FILE, SEGMENTS_FILE, ANNO_FILE]
            for file in needed:
                if not (scans / file).is_file():
                    raise DataError(f"{scans / file}: file not found; scene {name} of the {split} "
                                    f"split needs {needed}")
            options = {} if split == "test" else {"label_index": label_index}
            jobs.append(SceneJob(name=name, split=split, source=scans, options=options))
    return jobs


# ----------------------------------------------------------------------------- one scene


def _segment_ids(path: Path, n_vertices: int) -> np.ndarray:
    seg = int_array(read_json(path, ("segIndices",))["segIndices"], path, "segIndices")
    if len(seg) != n_vertices:
        raise DataError(f"{path}: segIndices must be {n_vertices} integers (one per mesh vertex), "
                        f"got {len(seg)}")
    if len(seg) and seg.min() < 0:
        raise DataError(f"{path}: segIndices must be >= 0")
    return seg


def _check_group(group, g: int, source) -> tuple[str, int, np.ndarray]:
    keys = ("label", "objectId", "segments")
    if not isinstance(group, dict) or any(k not in group for k in keys):
        raise DataError(f"{source}: segGroups[{g}] must be an object with keys {list(keys)}")
    label, object_id = group["label"], group["objectId"]
    if not isinstance(label, str) or type(object_id) is not int:
        raise DataError(f"{source}: segGroups[{g}] expected a string label, an integer objectId "
                        f"and a list of integer segment ids (found {label!r}, {object_id!r})")
    if not -(2**15) <= object_id < 2**15:
        raise DataError(f"{source}: segGroups[{g}] objectId {object_id} does not fit int16")
    return label, object_id, int_array(group["segments"], source, f"segGroups[{g}] segments")


def _concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` over the pairs, without a Python loop."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(counts.sum())


def annotate_vertices(
    seg_indices: np.ndarray,
    seg_groups: list,
    label_index: dict[str, int],
    source: str | os.PathLike = ANNO_FILE,
) -> tuple[np.ndarray, np.ndarray]:
    """Up-to-3-label vertex annotation of REFERENCE_SPEC 1.2 step 3 (audit note 1).

    Groups are taken in file order; a group whose label maps to no class is skipped; each of
    its vertices that still has a free slot gets the class and objectId in its next slot,
    together with the number of vertices labelled in this step. Finally, on vertices with
    several labels, the slot of the smallest such number is swapped into column 0 (first
    one on ties, like argmin). A group naming a segment id that no vertex has is an error.
    Returns ``segment`` and ``instance``, both (N, 3) int16 with -1 in empty slots.
    """
    n = len(seg_indices)
    segment = np.full((n, MAX_LABELS), -1, np.int16)
    instance = np.full((n, MAX_LABELS), -1, np.int16)
    size = np.full((n, MAX_LABELS), np.inf)  # vertices labelled in the step that filled the slot
    used = np.zeros(n, np.int64)  # filled slots per vertex
    # Vertices grouped by segment id: segment seg_ids[j] owns order[starts[j]:starts[j]+counts[j]].
    order = np.argsort(seg_indices, kind="stable")
    seg_ids, starts, counts = np.unique(seg_indices[order], return_index=True, return_counts=True)
    for g, group in enumerate(seg_groups):
        label, object_id, segments = _check_group(group, g, source)
        segments = np.unique(segments)  # the reference tests membership (np.isin): a set
        pos = np.minimum(np.searchsorted(seg_ids, segments), max(len(seg_ids) - 1, 0))
        unknown = segments[seg_ids[pos] != segments] if len(seg_ids) else segments
        if len(unknown):
            raise DataError(f"{source}: segGroups[{g}] ({label!r}) references segment ids "
                            f"{unknown[:5].tolist()} that no vertex has in {SEGMENTS_FILE}")
        cls = label_index.get(label, -1)
        if cls < 0:
            continue
        verts = order[_concat_ranges(starts[pos], counts[pos])]
        verts = verts[used[verts] < MAX_LABELS]
        if len(verts) == 0:
            continue
        slot = used[verts]
        segment[verts, slot] = cls
        instance[verts, slot] = object_id
        size[verts, slot] = len(verts)
        used[verts] += 1
    multi = np.flatnonzero(used > 1)
    major = np.argmin(size[multi], axis=1)  # (M,) slot of the smallest instance
    for labels in (segment, instance):
        first = labels[multi, 0].copy()
        labels[multi, 0] = labels[multi, major]
        labels[multi, major] = first
    return segment, instance


def process(job: SceneJob) -> dict[str, np.ndarray]:
    """Arrays of one processed ScanNet++ scene (REFERENCE_SPEC 1.2 steps 1-4)."""
    scans = Path(job.source)
    mesh = read_mesh_ply(scans / MESH_FILE)  # refuses NaN / infinite vertices
    arrays = {
        "coord": mesh.vertices.astype(np.float32),
        # The reference reads colours through Open3D (c / 255 as float64) and stores
        # floor(x * 255). We checked all c in 0..255: (c / 255) * 255 == c exactly in float64,
        # so the uint8 values of the PLY are the reference's values.
        "color": mesh.colors.astype(np.uint8),
        # Open3D's compute_vertex_normals sums unnormalised face normals (2 x area x unit
        # normal) and normalises: the same direction as the area-weighted unit normals here.
        "normal": vertex_normals(mesh.vertices, mesh.faces),
        "superpoint": segment_mesh(mesh.vertices, mesh.faces, 0.01, 20),
        "scene_id": np.array(job.name),
    }
    warn_degenerate(scans / MESH_FILE, mesh.vertices, mesh.faces, arrays["superpoint"])
    if job.split != "test":  # test scenes ship without annotation files
        seg_indices = _segment_ids(scans / SEGMENTS_FILE, len(mesh.vertices))
        groups = read_json(scans / ANNO_FILE, ("segGroups",))["segGroups"]
        if not isinstance(groups, list):
            raise DataError(f"{scans / ANNO_FILE}: segGroups must be a list of groups, "
                            f"found {type(groups).__name__}")
        label_index = job.options.get("label_index", {})
        arrays["segment"], arrays["instance"] = annotate_vertices(
            seg_indices, groups, label_index, source=scans / ANNO_FILE)
    return arrays


# ----------------------------------------------------------------------------- chunking


def chunk_folder_name(split: str, grid_size: float | None, chunk_range, chunk_stride) -> str:
    """Output split folder, named like the reference's (1.3 step 4).

    The reference prints ``grid_size * 100`` followed by "mm", so a 1 cm grid is called
    "grid1mm" (its naming bug, kept because the configs name this folder).
    """
    grid = "" if grid_size is None else f"grid{grid_size * 100:.0f}mm_"
    r, s = chunk_range, chunk_stride
    return f"{split}_{grid}chunk{r[0]:g}x{r[1]:g}_stride{s[0]:g}x{s[1]:g}"


def grid_first_indices(coord: np.ndarray, grid_size: float) -> np.ndarray:
    """Index of the first point in each occupied voxel, voxels in lexicographic (x, y, z) order.

    coord: (N, 3) non-negative. This is what ``np.unique(keys, axis=0, return_index=True)``
    returns in the reference; packing the key into one int64 gives the same order, faster.
    """
    keys = np.floor(coord / grid_size).astype(np.int64)  # (N, 3) voxel keys >= 0
    dims = keys.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
        raise DataError(f"grid_size: {grid_size} gives too many voxels for the scene extent")
    packed = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
    _, first = np.unique(packed, return_index=True)  # stable sort: first occurrence per voxel
    return first


def chunk_origins(extent, stride: float, size: float, at_least_one: bool) -> np.ndarray:
    """Chunk starts 0, s, 2s, ... strictly below ``extent + stride - size`` (1.3 step 3).

    With ``at_least_one`` an axis shorter than ``size - stride`` still gets the chunk at 0;
    the reference gives none there, so scenes under 3 m along x vanish from training.
    """
    origins = np.arange(0, extent + stride - size, stride)
    return origins if len(origins) or not at_least_one else np.zeros(1)


def _chunk_scene(scene_dir: Path, out_dir: Path, params: dict) -> list[str]:
    """Chunk one processed scene into ``out_dir/<scene>_<k>``; returns the chunk names."""
    scene = scene_dir.name
    marker = out_dir / f".{scene}.chunks.json"  # written last: the scene's chunks are complete
    if marker.is_file():
        info = read_json(marker)
        if info.get("params") == params and all(scene_is_done(out_dir / c) for c in info["chunks"]):
            return list(info["chunks"])
    data = load_scene(scene_dir)
    coord = data.get("coord")
    if coord is None or coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0:
        raise DataError(f"{scene_dir}: expected coord.npy of shape (N, 3) with N > 0")
    n = len(coord)
    per_point = {k: v for k, v in data.items() if v.ndim >= 1}
    bad = [k for k, v in per_point.items() if len(v) != n]
    if bad:
        raise DataError(f"{scene_dir}: arrays {bad} do not have one row per point ({n})")
    c = coord - coord.min(axis=0)  # work coordinates; saved arrays keep the original ones
    if params["grid_size"] is not None:
        keep = grid_first_indices(c, params["grid_size"])
        c = c[keep]
        per_point = {k: v[keep] for k, v in per_point.items()}
    (r0, r1), (s0, s1) = params["chunk_range"], params["chunk_stride"]
    extent = c.max(axis=0)[:2]
    if params["reference_y_origins"]:
        # The reference's origins: y built from the x extent/stride/range (REFERENCE_SPEC
        # 11.2 item 8), and no chunk at all when the x extent is below range - stride.
        xs = chunk_origins(extent[0], s0, r0, at_least_one=False)
        ys = chunk_origins(extent[0], s0, r0, at_least_one=False)
    else:  # correct: each axis from its own extent, stride and range; at least one chunk
        xs = chunk_origins(extent[0], s0, r0, at_least_one=True)
        ys = chunk_origins(extent[1], s1, r1, at_least_one=True)
    names = []
    for x0 in xs:  # x-major order, like the reference's meshgrid(indexing="ij")
        for y0 in ys:
            # Half-open boxes: a point on the far edge of the last chunk (c == x0 + range)
            # belongs to no chunk, as in the reference.
            mask = (c[:, 0] >= x0) & (c[:, 0] < x0 + r0) & (c[:, 1] >= y0) & (c[:, 1] < y0 + r1)
            if mask.sum() < params["min_points"]:
                continue
            name = f"{scene}_{len(names)}"
            arrays = {k: v[mask] for k, v in per_point.items()}
            arrays["scene_id"] = np.array(name)
            write_scene(out_dir / name, arrays)
            names.append(name)
    k = len(names)  # remove chunks left by an earlier run that made more of them
    while (out_dir / f"{scene}_{k}").is_dir():
        shutil.rmtree(out_dir / f"{scene}_{k}")
        k += 1
    write_json(marker, {"scene": scene, "params": params, "chunks": names})
    return names


def chunk_scenes(
    processed_root: str | os.PathLike,
    split: str = "train",
    grid_size: float | None = 0.01,
    chunk_range=(6.0, 6.0),
    chunk_stride=(3.0, 3.0),
    min_points: int = 10000,
    workers: int = 1,
    reference_y_origins: bool = False,
) -> list[str]:
    """Grid-sample and cut the scenes of ``<processed_root>/<split>`` into BEV chunks (1.3).

    Writes ``<processed_root>/<split>_grid1mm_chunk6x6_stride3x3/<scene>_<k>/`` (defaults)
    and returns all chunk names, scene by scene. A rerun skips scenes whose chunks were all
    written with the same parameters. ``reference_y_origins=True`` reproduces the
    reference's chunk origins exactly (see :func:`_chunk_scene`).
    """
    processed_root = Path(processed_root)
    if grid_size is not None and not grid_size > 0:
        raise DataError(f"grid_size: expected a positive size in metres or None, got {grid_size}")
    for name, pair in (("chunk_range", chunk_range), ("chunk_stride", chunk_stride)):
        if len(pair) != 2 or not all(v > 0 for v in pair):
            raise DataError(f"{name}: expected two positive lengths in metres, got {pair}")
    if min_points < 0 or workers < 1:
        raise DataError(f"min_points >= 0 and workers >= 1 expected, got {min_points}, {workers}")
    source = processed_root / split
    if not source.is_dir():
        raise DataError(f"{source}: processed split folder not found")
    scenes = sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
    unfinished = [d.name for d in scenes if not scene_is_done(d)]
    if not scenes or unfinished:
        raise DataError(f"{source}: expected finished processed scenes; "
                        f"{'none found' if not scenes else f'unfinished: {unfinished[:5]}'}")
    out_dir = processed_root / chunk_folder_name(split, grid_size, chunk_range, chunk_stride)
    params = {"grid_size": None if grid_size is None else float(grid_size),
              "chunk_range": [float(v) for v in chunk_range],
              "chunk_stride": [float(v) for v in chunk_stride],
              "min_points": int(min_points), "reference_y_origins": bool(reference_y_origins)}
    results: dict[str, list[str]] = {}
    with tqdm(total=len(scenes), desc=f"chunk {split}", unit="scene") as bar:
        if workers == 1:
            for d in scenes:
                results[d.name] = _chunk_scene(d, out_dir, params)
                bar.update()
        else:
            with process_pool(workers) as pool:
                futures = {pool.submit(_chunk_scene, d, out_dir, params): d.name for d in scenes}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return [name for d in scenes for name in results[d.name]]
