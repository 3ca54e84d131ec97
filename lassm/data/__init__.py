"""Scene data: raw-format readers, preprocessing, superpoints, synthetic rooms.

This package knows nothing of the network (ARCHITECTURE.md).
"""

from .io import DataError, Mesh, load_scene, read_mesh_ply, write_mesh_ply, write_scene

__all__ = ["DataError", "Mesh", "load_scene", "read_mesh_ply", "write_mesh_ply", "write_scene"]
