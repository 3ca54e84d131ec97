"""Mesh geometry shared by the preprocessing paths."""

from __future__ import annotations

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
