"""The Python SDK: `Mesh` for services (`@mesh.function`) and calls between services."""

from common.errors import SpaceCloudError

from .mesh import Mesh, MeshNotStarted

__all__ = ["Mesh", "MeshNotStarted", "SpaceCloudError"]
