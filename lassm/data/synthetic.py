"""Synthetic rooms: the built-in dataset, written in ScanNet's raw layout (REFERENCE_SPEC 1.1).

A room is a floor, four walls (with holes for doors and windows) and furniture of all 18
ScanNet instance classes (:mod:`.synthetic_furniture`, built from the parametric parts of
:mod:`.synthetic_parts`), laid out by room type (bedroom, office, bathroom, living room,
kitchen; :mod:`.synthetic_layout`), then "scanned" here: unseen undersides and backs
against walls are removed, holes are punched, wall tops are ragged, vertices get a few
millimetres of noise and colours a lighting falloff. Every object is a separate mesh
component, so ScanNet's Segmentator (kThresh 0.01, segMinVerts 20) never makes a segment
that spans two objects and the aggregation groups are exact unions of segments, as the
preprocessing in :mod:`.scannet` expects.

The same seed gives bit-identical files. ``write_synthetic_scannet`` writes a whole raw
dataset (scenes, labels tsv, split lists) that ``lassm.data.scannet`` reads unchanged.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import tqdm
from . import synthetic_parts as P
from .io import DataError, Mesh, atomic_path, read_json, write_json, write_mesh_ply
from .labels import CLASS_LABELS_200, VALID_CLASS_IDS_200
from .superpoints import segment_mesh
from .synthetic_layout import ROOM_TYPES, Layout, furnish_room
from .workers import process_pool

# Vertex spacing of furniture and of walls/floor (m). "full" matches ScanNet's vh_clean_2
# meshes (1-3 cm); "small" is for tests and smoke runs.
SIZES = {"full": (0.02, 0.025), "small": (0.08, 0.12)}
SCENE_TYPES = {"bedroom": "Bedroom / Hotel", "office": "Office", "bathroom": "Bathroom",
               "living room": "Living room / Lounge", "kitchen": "Kitchen"}
K_THRESH, SEG_MIN_VERTS = 0.01, 20  # ScanNet's segs files: *_vh_clean_2.0.010000.segs.json

# Raw categories the generator uses -> (nyu40 id, nyu40 class name), as in ScanNet's tsv.
# ScanNet20 classes come from the nyu40 id; ScanNet200 classes from the raw category.
CATEGORIES = {
    "wall": (1, "wall"), "floor": (2, "floor"), "cabinet": (3, "cabinet"),
    "kitchen cabinet": (3, "cabinet"), "file cabinet": (3, "cabinet"),
    "bathroom cabinet": (3, "cabinet"), "bed": (4, "bed"), "chair": (5, "chair"),
    "office chair": (5, "chair"), "armchair": (5, "chair"), "couch": (6, "sofa"),
    "table": (7, "table"), "dining table": (7, "table"), "coffee table": (7, "table"),
    "end table": (7, "table"), "door": (8, "door"), "window": (9, "window"),
    "bookshelf": (10, "bookshelf"), "picture": (11, "picture"), "poster": (11, "picture"),
    "counter": (12, "counter"), "kitchen counter": (12, "counter"),
    "bathroom counter": (12, "counter"), "desk": (14, "desk"), "curtain": (16, "curtain"),
    "refrigerator": (24, "refridgerator"), "mini fridge": (24, "refridgerator"),
    "shower curtain": (28, "shower curtain"), "toilet": (33, "toilet"), "sink": (34, "sink"),
    "bathtub": (36, "bathtub"), "trash can": (39, "otherfurniture"),
    "ottoman": (39, "otherfurniture"), "bench": (39, "otherfurniture"),
    "nightstand": (32, "night stand"), "pillow": (18, "pillow"), "lamp": (35, "lamp"),
    "box": (29, "box"), "monitor": (40, "otherprop"),
}
LABEL_TSV = "scannetv2-labels.combined.tsv"
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt"}


@dataclass
class SyntheticRoom:
    """One generated room: the mesh and its ground truth, ready for :func:`write_room`."""

    name: str
    mesh: Mesh
    instance: np.ndarray  # (N,) int64 object id per vertex, -1 = unannotated clutter
    objects: list[tuple[int, str]]  # (object id, raw category), ids 0..K-1
    room_type: str = ""
    seed: int = 0
    size: str = "full"


# ----------------------------------------------------------------------------- scanning


def _keep_faces(part: P.Part, keep: np.ndarray) -> P.Part:
    """Keep the faces in ``keep`` and drop vertices no face uses any more."""
    faces = part.faces[keep]
    used = np.zeros(len(part.vertices), bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    return P.Part(part.vertices[used], remap[faces], part.colors[used])


def _face_geometry(part: P.Part):
    tri = part.vertices[part.faces]  # (M, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2
    return tri.mean(axis=1), cross / (2 * area[:, None] + 1e-12), area  # centroids, normals, areas


def _scan(part: P.Part, rng, room_size, is_structure: bool) -> P.Part:
    """Scanner-like losses: unseen undersides and wall-facing backs, then a few holes."""
    centre, normal, area = _face_geometry(part)
    keep = np.ones(len(part.faces), bool)
    if not is_structure:
        keep &= normal[:, 2] > -0.5  # undersides: a hand-held scanner never looks up at them
        for axis, size in ((0, room_size[0]), (1, room_size[1])):  # backs hidden against a wall
            keep &= ~((centre[:, axis] < 0.03) & (normal[:, axis] < -0.7))
            keep &= ~((centre[:, axis] > size - 0.03) & (normal[:, axis] > 0.7))
    diagonal = np.linalg.norm(np.ptp(part.vertices, axis=0))
    if diagonal > 0.6:
        for _ in range(rng.poisson(0.04 * area.sum() + 0.3)):
            hole = np.linalg.norm(centre - centre[rng.integers(len(centre))], axis=1)
            hole = hole < rng.uniform(0.03, 0.12) * min(diagonal, 2.0)
            if (keep & ~hole).sum() > 0.8 * keep.sum():  # never lose most of an object
                keep &= ~hole
    return _keep_faces(part, keep)


def _structure(room: Layout, rng, spacing: float) -> list[tuple[str, P.Part]]:
    """Floor and four walls with the door/window holes; wall tops left ragged by the scan."""
    width, depth, height = room.width, room.depth, room.height
    floor = P.plane((0, 0, 0), P.EX, width, P.EY, depth, spacing)
    floor_look = [(P.WOOD, "planks"), (P.PAINT, "tiles"), (P.FABRIC, "fabric")][rng.integers(3)]
    wall_look = "tiles" if room.room_type == "bathroom" and rng.random() < 0.5 else \
        "stripes" if rng.random() < 0.1 else "plain"
    if room.room_type == "bathroom":
        floor_look = (P.PAINT + P.DARK, "tiles")
    pieces = [("floor", P.paint(floor, P.pick(rng, floor_look[0]), rng, floor_look[1]))]
    paint = P.pick(rng, P.PAINT)
    for k in range(4):
        length = room.lengths[k]
        wall = P.wall_sheet(length, height, room.holes[k], spacing)
        centre = wall.vertices[wall.faces].mean(axis=1)  # (M, 3) local: x along wall, z up
        top = height - rng.uniform(0.0, 0.25) - 0.2 * (1 + np.sin(centre[:, 0] / rng.uniform(0.3, 1.0)
                                                                  + rng.uniform(0, 6.3)))
        wall = _keep_faces(wall, centre[:, 2] < top)
        wall = P.paint(wall, paint * rng.uniform(0.95, 1.05), rng, wall_look)
        pieces.append(("wall", P.moved(wall, k * np.pi / 2, room.corners[k])))
    return pieces


def _smooth_warp(points: np.ndarray, rng, amplitude: float) -> np.ndarray:
    """(N, 3) displacement: a few random plane waves, like the low-frequency drift of a scan."""
    out = np.zeros_like(points)
    for _ in range(4):
        direction = rng.normal(size=3)
        k = direction / np.linalg.norm(direction) * 2 * np.pi / rng.uniform(0.4, 2.0)
        out += np.sin(points @ k + rng.uniform(0, 6.3))[:, None] * rng.normal(0, amplitude, 3)
    return out


# ----------------------------------------------------------------------------- rooms


def generate_room(seed: int, size: str = "full", room_type: str | None = None) -> SyntheticRoom:
    """Generate one room; the same (seed, size, room_type) always gives the same arrays.

    ``room_type`` defaults to ``ROOM_TYPES[seed % 5]``, so any five consecutive seeds give
    one room of each type and together contain every ScanNet instance class.
    """
    if size not in SIZES:
        raise DataError(f"size: unknown room size {size!r}; expected one of {list(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")
    room_type = ROOM_TYPES[seed % len(ROOM_TYPES)] if room_type is None else room_type
    if room_type not in ROOM_TYPES:
        raise DataError(f"room_type: unknown {room_type!r}; expected one of {ROOM_TYPES}")
    rng = np.random.default_rng(seed)
    spacing, structure_spacing = SIZES[size]
    room = furnish_room(rng, room_type, spacing)
    pieces = _structure(room, rng, structure_spacing)
    pieces += [(item.label, P.moved(item.part, yaw, offset)) for item, yaw, offset in room.placed]

    parts, instance, objects = [], [], []
    for label, part in pieces:
        part = _scan(part, rng, (room.width, room.depth), label in ("wall", "floor"))
        if len(part.faces) == 0:
            continue
        object_id = -1 if label is None else len(objects)
        if label is not None:
            objects.append((object_id, label))
        parts.append(part)
        instance.append(np.full(len(part.vertices), object_id, np.int64))
    mesh = P.merge(parts)
    vertices = mesh.vertices + _smooth_warp(mesh.vertices, rng, 0.003)
    vertices += rng.normal(0.0, 0.002, vertices.shape)  # per-vertex depth noise
    light = np.array([rng.uniform(0, room.width), rng.uniform(0, room.depth), room.height])
    falloff = np.linalg.norm(mesh.vertices - light, axis=1) / np.hypot(room.width, room.depth)
    colors = mesh.colors * (1.1 - 0.35 * falloff)[:, None]  # brighter under the light
    colors = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
    return SyntheticRoom(
        name=f"synth{seed:04d}_00",
        mesh=Mesh(vertices.astype(np.float32), colors, mesh.faces.astype(np.int64)),
        instance=np.concatenate(instance), objects=objects,
        room_type=room_type, seed=int(seed), size=size,
    )


# ----------------------------------------------------------------------------- writing


def _scene_files(raw_root: Path, scene: str) -> dict[str, Path]:
    folder = raw_root / "scans" / scene
    return {"ply": folder / f"{scene}_vh_clean_2.ply",
            "segs": folder / f"{scene}_vh_clean_2.0.010000.segs.json",
            "aggregation": folder / f"{scene}.aggregation.json",
            "txt": folder / f"{scene}.txt"}


def _scene_info(room: SyntheticRoom) -> dict[str, str]:
    """The ``<scene>.txt`` lines: ScanNet's keys, plus how the room was generated."""
    return {"axisAlignment": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1", "colorHeight": "968",
            "colorWidth": "1296", "depthHeight": "480", "depthWidth": "640",
            "numColorFrames": "0", "numDepthFrames": "0",
            "sceneType": SCENE_TYPES[room.room_type], "synthRoomType": room.room_type,
            "synthSeed": str(room.seed), "synthSize": room.size}


def write_room(room: SyntheticRoom, raw_root: str | os.PathLike, scene_name: str) -> Path:
    """Write one room as ``<raw_root>/scans/<scene_name>/`` in ScanNet's raw layout.

    The ``.txt`` goes last, so a folder with it is complete. Returns the scene folder.
    """
    if not scene_name or Path(scene_name).name != scene_name:
        raise DataError(f"scene_name: expected a plain folder name like 'synth0000_00', got {scene_name!r}")
    files = _scene_files(Path(raw_root), scene_name)
    segments = segment_mesh(room.mesh.vertices, room.mesh.faces, K_THRESH, SEG_MIN_VERTS)  # (N,)
    # No segment may hold two objects (or an object and unannotated clutter): then the groups
    # below cover exactly their objects' vertices (REFERENCE_SPEC 1.1 step 4).
    pairs = np.unique(np.stack([segments, room.instance], axis=1), axis=0)
    if len(pairs) != len(np.unique(segments)):
        raise RuntimeError(f"{scene_name}: a segment spans two objects; parts must stay unwelded")
    groups = [{"id": int(i), "objectId": int(i), "segments": np.unique(segments[room.instance == i]).tolist(),
               "label": label} for i, label in room.objects]
    write_mesh_ply(files["ply"], room.mesh)
    write_json(files["segs"], {"params": {"kThresh": str(K_THRESH), "segMinVerts": str(SEG_MIN_VERTS)},
                               "sceneId": scene_name, "segIndices": segments.tolist()})
    write_json(files["aggregation"], {"sceneId": f"scannet.{scene_name}", "appId": "Aggregator.v2",
                                      "segGroups": groups,
                                      "segmentsFile": f"scannet.{files['segs'].name}"})
    with atomic_path(files["txt"]) as tmp:
        tmp.write_text("".join(f"{k} = {v}\n" for k, v in _scene_info(room).items()))
    return files["txt"].parent


def _room_is_written(raw_root: Path, scene: str, seed: int, size: str, room_type: str) -> bool:
    files = _scene_files(raw_root, scene)
    if not all(f.is_file() for f in files.values()):
        return False
    lines = dict(line.split(" = ", 1) for line in files["txt"].read_text().splitlines() if " = " in line)
    return lines.get("synthSeed") == str(seed) and lines.get("synthSize") == size \
        and lines.get("synthRoomType") == room_type


def _make_room(raw_root: Path, scene: str, seed: int, size: str, room_type: str) -> str:
    write_room(generate_room(seed, size, room_type), raw_root, scene)
    return scene


def room_seed(seed: int, index: int) -> int:
    """Seed of room ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_label_tsv(path: Path, counts: dict[str, int]) -> None:
    """ScanNet's label table for our raw categories: ``id`` is the ScanNet200 id."""
    header = ("id", "raw_category", "category", "count", "nyu40id", "nyu40class")
    rows = ["\t".join(header)]
    for raw, (nyu40, nyu40class) in CATEGORIES.items():
        cid = VALID_CLASS_IDS_200[CLASS_LABELS_200.index(raw)]
        rows.append("\t".join(map(str, (cid, raw, raw, counts.get(raw, 0), nyu40, nyu40class))))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def write_synthetic_scannet(
    raw_root: str | os.PathLike, num_rooms: int = 8, seed: int = 0, size: str = "full",
    val_fraction: float = 0.25, workers: int = 1,
) -> list[str]:
    """Write ``num_rooms`` rooms plus the labels tsv and split lists into ``raw_root``.

    Room i is generated from ``room_seed(seed, i)`` as room type ``ROOM_TYPES[(seed + i) % 5]``
    and named ``synth{i:04d}_00``; rooms already written with the same parameters are
    skipped. The last ``round(num_rooms * val_fraction)`` rooms (at least one when
    ``num_rooms >= 2``) form the val split. Returns the scene names.

    Nothing is deleted: ``synth*`` folders left in ``scans/`` by an earlier run with more
    rooms stay on disk, and the ScanNet preprocessing (:func:`.scannet.find_jobs`) makes every
    scene folder in no split list a test scene. A warning names them; delete them or write
    to a fresh ``raw_root``.
    """
    if isinstance(num_rooms, bool) or not isinstance(num_rooms, (int, np.integer)) or num_rooms < 1:
        raise DataError(f"num_rooms: expected an integer >= 1, got {num_rooms!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")
    if size not in SIZES:
        raise DataError(f"size: unknown room size {size!r}; expected one of {list(SIZES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise DataError(f"workers: expected an integer >= 1, got {workers!r}")
    raw_root = Path(raw_root)
    if raw_root.exists() and not raw_root.is_dir():
        raise DataError(f"raw_root: {raw_root} exists and is not a folder")
    names = [f"synth{i:04d}_00" for i in range(num_rooms)]
    wanted = set(names)
    stale = sorted(d.name for d in (raw_root / "scans").glob("synth*") if d.is_dir() and d.name not in wanted)
    if stale:  # left on disk on purpose: the user may want them; deleting data is their call
        warnings.warn(f"{raw_root / 'scans'}: {len(stale)} synth* folder(s) beyond the {num_rooms} rooms "
                      f"asked for ({stale[0]} .. {stale[-1]}), left by an earlier run; the ScanNet "
                      "preprocessing makes them test scenes. Delete them or use a fresh raw_root.",
                      stacklevel=2)
    specs = [(name, room_seed(seed, i), size, ROOM_TYPES[(seed + i) % len(ROOM_TYPES)])
             for i, name in enumerate(names)]
    todo = [spec for spec in specs if not _room_is_written(raw_root, *spec)]
    with tqdm(total=len(todo), desc="synthetic rooms", unit="room", disable=not todo) as bar:
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                _make_room(raw_root, *spec)
                bar.update()
        else:
            with process_pool(min(workers, len(todo))) as pool:
                for future in as_completed([pool.submit(_make_room, raw_root, *spec) for spec in todo]):
                    future.result()
                    bar.update()

    counts: dict[str, int] = {}
    for name in names:
        for group in read_json(_scene_files(raw_root, name)["aggregation"], ("segGroups",))["segGroups"]:
            counts[group["label"]] = counts.get(group["label"], 0) + 1
    write_label_tsv(raw_root / LABEL_TSV, counts)
    num_val = max(1, round(num_rooms * val_fraction)) if num_rooms >= 2 else 0
    for split, scenes in (("train", names[:num_rooms - num_val]), ("val", names[num_rooms - num_val:])):
        with atomic_path(raw_root / SPLIT_FILES[split]) as tmp:
            tmp.write_text("".join(f"{scene}\n" for scene in scenes))
    return names
