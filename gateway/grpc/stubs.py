"""The generated messages (`pb`) and service classes (`pb_grpc`), generated first if missing or stale."""

from __future__ import annotations

from gateway.grpc import generate

generate.ensure()

from gateway.grpc._generated import space_cloud_pb2 as pb  # noqa: E402
from gateway.grpc._generated import space_cloud_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["pb", "pb_grpc"]
