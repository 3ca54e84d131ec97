"""Mesh geometry shared by the preprocessing paths."""

from __future__ import annotations

import warnings

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (REFERENCE_SPEC 1.1 step 3).

    Each face adds its unit normal times its area to its three vertices; the sums are then
    normalised. The 1e-8 guards follow the reference. Returns (N, 3) float32.
    """
    v = vertices.astype(np.float64)
    tri = v[faces]  # (M, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (M, 3)
    length = np.linalg.norm(cross, axis=1, keepdims=True) + 1e-8
    weighted = cross / length * (length / 2)  # unit normal x area
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], weighted)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-8
    return normals.astype(np.float32)


def degenerate_faces(vertices: np.ndarray, faces: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """(M,) bool: faces of (near) zero area, i.e. |cross| <= ``eps`` (square metres x 2)."""
    tri = vertices.astype(np.float64)[faces]  # (M, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (M, 3)
    return ~(np.linalg.norm(cross, axis=1) > eps)  # NaN counts as degenerate


def warn_degenerate(name, vertices: np.ndarray, faces: np.ndarray | None, superpoint: np.ndarray,
                    fraction: float = 0.5) -> None:
    """Warn (naming ``name``) when most faces have zero area or most superpoints are one vertex.

    Both give useless superpoints without an error: a degenerate face has NaN edge weights, so
    the Segmentator joins nothing across it and each vertex stays its own segment.
    """
    if faces is not None and len(faces):
        bad = int(degenerate_faces(vertices, faces).sum())
        if bad > fraction * len(faces):
            warnings.warn(f"{name}: {bad} of {len(faces)} faces have zero area (degenerate mesh); "
                          "superpoints will be mostly single vertices", stacklevel=2)
            return
    _, inverse, counts = np.unique(superpoint, return_inverse=True, return_counts=True)
    single = int((counts[inverse.reshape(-1)] == 1).sum())
    if len(superpoint) > 1 and single > fraction * len(superpoint):
        warnings.warn(f"{name}: {single} of {len(superpoint)} points are one-vertex superpoints; "
                      "check the mesh / cloud (degenerate faces, duplicate or isolated points)", stacklevel=2)
