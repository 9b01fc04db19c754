"""The Python SDK: `Mesh` for services (`@mesh.function`) and calls between services."""

from mesh.errors import MeshError

from .mesh import Mesh, MeshNotStarted

__all__ = ["Mesh", "MeshError", "MeshNotStarted"]
