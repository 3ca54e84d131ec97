"""Class lists and label maps of the supported benchmarks (REFERENCE_SPEC section 2.2, Appendix A).

Semantic labels on disk are indices into these lists (-1 = unlabelled / other). The
instance ("thing") classes of ScanNet and ScanNet200 are all classes but wall and floor;
ScanNet++ lists its 84 instance classes explicitly.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .io import DataError

if TYPE_CHECKING:  # lassm.data stays importable without loading torch (preprocessing workers)
    import torch

CLASS_LABELS_20 = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
    'picture', 'counter', 'desk', 'curtain', 'refrigerator', 'shower curtain', 'toilet',
    'sink', 'bathtub', 'otherfurniture',
)

VALID_CLASS_IDS_20 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39,
)

CLASS_LABELS_200 = (
    'wall', 'chair', 'floor', 'table', 'door', 'couch', 'cabinet', 'shelf', 'desk',
    'office chair', 'bed', 'pillow', 'sink', 'picture', 'window', 'toilet', 'bookshelf',
    'monitor', 'curtain', 'book', 'armchair', 'coffee table', 'box', 'refrigerator', 'lamp',
    'kitchen cabinet', 'towel', 'clothes', 'tv', 'nightstand', 'counter', 'dresser', 'stool',
    'cushion', 'plant', 'ceiling', 'bathtub', 'end table', 'dining table', 'keyboard', 'bag',
    'backpack', 'toilet paper', 'printer', 'tv stand', 'whiteboard', 'blanket',
    'shower curtain', 'trash can', 'closet', 'stairs', 'microwave', 'stove', 'shoe',
    'computer tower', 'bottle', 'bin', 'ottoman', 'bench', 'board', 'washing machine',
    'mirror', 'copier', 'basket', 'sofa chair', 'file cabinet', 'fan', 'laptop', 'shower',
    'paper', 'person', 'paper towel dispenser', 'oven', 'blinds', 'rack', 'plate',
    'blackboard', 'piano', 'suitcase', 'rail', 'radiator', 'recycling bin', 'container',
    'wardrobe', 'soap dispenser', 'telephone', 'bucket', 'clock', 'stand', 'light',
    'laundry basket', 'pipe', 'clothes dryer', 'guitar', 'toilet paper holder', 'seat',
    'speaker', 'column', 'bicycle', 'ladder', 'bathroom stall', 'shower wall', 'cup', 'jacket',
    'storage bin', 'coffee maker', 'dishwasher', 'paper towel roll', 'machine', 'mat',
    'windowsill', 'bar', 'toaster', 'bulletin board', 'ironing board', 'fireplace',
    'soap dish', 'kitchen counter', 'doorframe', 'toilet paper dispenser', 'mini fridge',
    'fire extinguisher', 'ball', 'hat', 'shower curtain rod', 'water cooler', 'paper cutter',
    'tray', 'shower door', 'pillar', 'ledge', 'toaster oven', 'mouse',
    'toilet seat cover dispenser', 'furniture', 'cart', 'storage container', 'scale',
    'tissue box', 'light switch', 'crate', 'power outlet', 'decoration', 'sign', 'projector',
    'closet door', 'vacuum cleaner', 'candle', 'plunger', 'stuffed animal', 'headphones',
    'dish rack', 'broom', 'guitar case', 'range hood', 'dustpan', 'hair dryer', 'water bottle',
    'handicap bar', 'purse', 'vent', 'shower floor', 'water pitcher', 'mailbox', 'bowl',
    'paper bag', 'alarm clock', 'music stand', 'projector screen', 'divider',
    'laundry detergent', 'bathroom counter', 'object', 'bathroom vanity', 'closet wall',
    'laundry hamper', 'bathroom stall door', 'ceiling light', 'trash bin', 'dumbbell',
    'stair rail', 'tube', 'bathroom cabinet', 'cd case', 'closet rod', 'coffee kettle',
    'structure', 'shower head', 'keyboard piano', 'case of water bottles', 'coat rack',
    'storage organizer', 'folded chair', 'fire alarm', 'power strip', 'calendar', 'poster',
    'potted plant', 'luggage', 'mattress',
)

VALID_CLASS_IDS_200 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 26, 27, 28,
    29, 31, 32, 33, 34, 35, 36, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55,
    56, 57, 58, 59, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    82, 84, 86, 87, 88, 89, 90, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
    110, 112, 115, 116, 118, 120, 121, 122, 125, 128, 130, 131, 132, 134, 136, 138, 139, 140,
    141, 145, 148, 154, 155, 156, 157, 159, 161, 163, 165, 166, 168, 169, 170, 177, 180, 185,
    188, 191, 193, 195, 202, 208, 213, 214, 221, 229, 230, 232, 233, 242, 250, 261, 264, 276,
    283, 286, 300, 304, 312, 323, 325, 331, 342, 356, 370, 392, 395, 399, 408, 417, 488, 540,
    562, 570, 572, 581, 609, 748, 776, 1156, 1163, 1164, 1165, 1166, 1167, 1168, 1169, 1170,
    1171, 1172, 1173, 1174, 1175, 1176, 1178, 1179, 1180, 1181, 1182, 1183, 1184, 1185, 1186,
    1187, 1188, 1189, 1190, 1191,
)

CLASS_LABELS_PP = (
    'wall', 'ceiling', 'floor', 'table', 'door', 'ceiling lamp', 'cabinet', 'blinds',
    'curtain', 'chair', 'storage cabinet', 'office chair', 'bookshelf', 'whiteboard', 'window',
    'box', 'window frame', 'monitor', 'shelf', 'doorframe', 'pipe', 'heater',
    'kitchen cabinet', 'sofa', 'windowsill', 'bed', 'shower wall', 'trash can', 'book',
    'plant', 'blanket', 'tv', 'computer tower', 'kitchen counter', 'refrigerator', 'jacket',
    'electrical duct', 'sink', 'bag', 'picture', 'pillow', 'towel', 'suitcase', 'backpack',
    'crate', 'keyboard', 'rack', 'toilet', 'paper', 'printer', 'poster', 'painting',
    'microwave', 'board', 'shoes', 'socket', 'bottle', 'bucket', 'cushion', 'basket',
    'shoe rack', 'telephone', 'file folder', 'cloth', 'blind rail', 'laptop', 'plant pot',
    'exhaust fan', 'cup', 'coat hanger', 'light switch', 'speaker', 'table lamp', 'air vent',
    'clothes hanger', 'kettle', 'smoke detector', 'container', 'power strip', 'slippers',
    'paper bag', 'mouse', 'cutting board', 'toilet paper', 'paper towel', 'pot', 'clock',
    'pan', 'tap', 'jar', 'soap dispenser', 'binder', 'bowl', 'tissue box', 'whiteboard eraser',
    'toilet brush', 'spray bottle', 'headphones', 'stapler', 'marker',
)

INSTANCE_CLASS_IDS_PP = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 21, 22, 23, 25, 27, 28, 29, 30, 31,
    32, 34, 35, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 49, 50, 51, 52, 54, 55, 56, 57, 58,
    59, 60, 61, 62, 65, 66, 67, 68, 69, 70, 71, 72, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85,
    86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
)

# mOSD tabletop scans: the table is stuff, every object (or object part) an instance.
CLASS_LABELS_MOSD = ("table", "object")

# Columns of ScanNet's scannetv2-labels.combined.tsv that the preprocessing reads.
TSV_COLUMNS = ("raw_category", "id", "nyu40id")


def read_label_tsv(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Map each raw category to ``(segment20, segment200)`` indices (-1 when not a class).

    The nyu40 id selects the ScanNet20 class and the tsv ``id`` the ScanNet200 class
    (REFERENCE_SPEC 1.1 step 4).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label table not found (ScanNet's scannetv2-labels.combined.tsv)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in TSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: columns {missing} missing; expected at least {list(TSV_COLUMNS)}")
        index20 = {cid: i for i, cid in enumerate(VALID_CLASS_IDS_20)}
        index200 = {cid: i for i, cid in enumerate(VALID_CLASS_IDS_200)}
        table = {}
        for line, row in enumerate(reader, start=2):
            try:
                nyu40, cid = int(row["nyu40id"] or 0), int(row["id"] or 0)
            except ValueError as err:
                raise DataError(f"{path}, line {line}: non-integer id or nyu40id ({err})") from err
            table[row["raw_category"]] = (index20.get(nyu40, -1), index200.get(cid, -1))
    return table


# --- Training targets (REFERENCE_SPEC 2.3) -------------------------------------------------------------


def train_labels(segment: torch.Tensor, num_classes_total: int, stuff_classes: tuple[int, ...],
                 check: bool = True) -> torch.Tensor:
    """Raw semantic labels (N,) -> train labels (N,) int64: thing classes 0..C-1, stuff and -1 -> -1.

    A thing class gets its rank among the non-stuff classes in ascending order. With stuff (0, 1)
    this is the reference's ``shift`` of spec 2.3; with ScanNet200's stuff (0, 2) it equals the
    reference's chair/floor swap followed by the same shift. ``check=False``: the caller has checked
    the label range itself (on a GPU each check is a host round trip).
    """
    import torch
    if segment.dtype.is_floating_point or segment.dtype == torch.bool:
        raise ValueError(f"segment: expected an integer tensor, got {segment.dtype}")
    if any(not 0 <= s < num_classes_total for s in stuff_classes):
        raise ValueError(f"stuff_classes: expected values in 0..{num_classes_total - 1}, got {stuff_classes}")
    segment = segment.long()
    if check and bool(labels_out_of_range(segment, num_classes_total).any()):
        raise ValueError(f"segment: expected labels in -1..{num_classes_total - 1}, got values in "
                         f"{int(segment.min())}..{int(segment.max())}")
    # Lookup table indexed by raw label + 1 (slot 0 is the unlabelled -1), built on the host and copied
    # without waiting for the device.
    table = torch.full((num_classes_total + 1,), -1, dtype=torch.long)
    things = [c for c in range(num_classes_total) if c not in set(stuff_classes)]
    table[torch.tensor(things, dtype=torch.long) + 1] = torch.arange(len(things))
    return table.to(segment.device, non_blocking=True)[segment + 1]


def labels_out_of_range(segment: torch.Tensor, num_classes_total: int) -> torch.Tensor:
    """() bool on the device: does ``segment`` hold a label outside -1..num_classes_total-1?"""
    return ((segment < -1) | (segment >= num_classes_total)).any()


def compact_instances(instance: torch.Tensor, train_label: torch.Tensor) -> torch.Tensor:
    """Instance ids (N,) -> 0..G-1 over points with a train label, -1 elsewhere (spec 2.3), int64."""
    return compact_instances_counted(instance, train_label)[0]


def compact_instances_counted(instance: torch.Tensor, train_label: torch.Tensor) -> tuple[torch.Tensor, int]:
    """:func:`compact_instances` and the instance count G, with one host round trip on a GPU (the unique)."""
    import torch
    if instance.shape != train_label.shape:
        raise ValueError(f"instance: expected the shape of train_label {tuple(train_label.shape)}, "
                         f"got {tuple(instance.shape)}")
    instance = instance.long()
    # Deliberately differs from the reference: a labelled point with instance -1 stays -1 (not id 0).
    keep = (train_label != -1) & (instance != -1)
    # Points left out get a sentinel below every id, and one sentinel is always appended, so it is the
    # first unique value: ranks 1..G are the instances, without a data-dependent boolean index.
    sentinel = torch.full((1,), torch.iinfo(torch.int64).min, dtype=torch.long, device=instance.device)
    values, rank = torch.unique(torch.cat([torch.where(keep, instance, sentinel), sentinel]), sorted=True,
                                return_inverse=True)
    return torch.where(keep, rank[:-1] - 1, -1), len(values) - 1
