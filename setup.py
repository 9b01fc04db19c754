"""The build step that pyproject.toml cannot say: the gRPC stubs are generated from gateway/grpc/space_cloud.proto
into the wheel (and into the source tree for an editable install), never written by hand or committed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _generator() -> Any:
    """gateway/grpc/generate.py, loaded by path: the package itself is not importable at build time."""
    spec = importlib.util.spec_from_file_location("_sc_grpc_generate", HERE / "gateway" / "grpc" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        generate = _generator()
        editable = getattr(self, "editable_mode", False)
        out = generate.OUT if editable else Path(self.build_lib, "gateway", "grpc", "_generated")
        generate.generate(out)


setup(cmdclass={"build_py": BuildWithStubs})
