"""Generate the Python stubs of `space_cloud.proto` with grpcio-tools: `python -m gateway.grpc.generate`.

The stubs are never written by hand nor committed. They are generated

- by the package build (`setup.py` runs `generate()` into the wheel), so `pip install .` ships them;
- by `./test` before the type check, and
- at import time by `gateway.grpc.stubs` when they are missing or older than the `.proto` (an
  editable install after the `.proto` changed), when grpcio-tools is there.

Output: `gateway/grpc/_generated/` (git-ignored) with `space_cloud_pb2.py`, `space_cloud_pb2_grpc.py`
and their `.pyi` (from mypy-protobuf when it is installed, else protoc's own `--pyi_out` for the
messages). `__init__.py` is written last and holds the `.proto`'s SHA-256, which tells stale stubs.

This module imports only the standard library at the top, so the build can load it by path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "space_cloud.proto"
OUT = HERE / "_generated"
PACKAGE = ("gateway", "grpc", "_generated")
"""Where the stubs live as a package: the generated `_pb2_grpc` imports `gateway.grpc._generated.space_cloud_pb2`."""
STAMP = re.compile(r'^PROTO_SHA256 = "([0-9a-f]{64})"$', re.MULTILINE)


class GenerationError(RuntimeError):
    """The stubs cannot be generated (grpcio-tools missing, protoc failed, folder not writable)."""


def fingerprint(proto: Path = PROTO) -> str:
    return hashlib.sha256(proto.read_bytes()).hexdigest()


def is_current(out: Path = OUT, proto: Path = PROTO) -> bool:
    """Are the stubs in `out` there and generated from this `.proto`?"""
    init = out / "__init__.py"
    try:
        found = STAMP.search(init.read_text())
    except OSError:
        return False
    names = ("space_cloud_pb2.py", "space_cloud_pb2_grpc.py")
    return found is not None and found.group(1) == fingerprint(proto) and all((out / n).exists() for n in names)


def _mypy_plugins() -> tuple[str, str] | None:
    """mypy-protobuf's protoc plugins, if this interpreter has mypy-protobuf (its scripts sit beside it)."""
    if importlib.util.find_spec("mypy_protobuf") is None:
        return None
    here = str(Path(sys.executable).parent)
    mypy, mypy_grpc = shutil.which("protoc-gen-mypy", path=here), shutil.which("protoc-gen-mypy_grpc", path=here)
    return (mypy, mypy_grpc) if mypy and mypy_grpc else None


def _protoc_args(root: Path, source: Path) -> list[str]:
    args = ["grpc_tools.protoc", f"-I{root}", f"--python_out={root}", f"--grpc_python_out={root}"]
    plugins = _mypy_plugins()
    if plugins:
        mypy, mypy_grpc = plugins
        args += [f"--plugin=protoc-gen-mypy={mypy}", f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
                 f"--mypy_out={root}", f"--mypy_grpc_out={root}"]
    else:
        args.append(f"--pyi_out={root}")
    return [*args, str(source)]


def generate(out: Path = OUT, proto: Path = PROTO) -> list[Path]:
    """Write the stubs of `proto` into `out` (created if needed); returns the files written."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError:
        raise GenerationError("grpcio-tools is not installed: pip install grpcio-tools") from None
    out.mkdir(parents=True, exist_ok=True)
    stamp = fingerprint(proto)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=out))
    try:
        package = tmp.joinpath(*PACKAGE)
        package.mkdir(parents=True)
        source = package / "space_cloud.proto"
        shutil.copyfile(proto, source)
        # protoc's include path must be absolute (in-process, it resolves its own well-known types)
        code = protoc.main(_protoc_args(tmp, source))
        if code != 0:
            raise GenerationError(f"protoc failed on {proto} (exit {code})")
        written = []
        for produced in sorted(package.iterdir()):
            if produced.name.startswith("space_cloud_pb2"):
                target = out / produced.name
                os.replace(produced, target)  # atomic per file: a concurrent import sees old or new
                written.append(target)
        init = out / "__init__.py"
        partial = tmp / "__init__.py"
        partial.write_text(
            '"""Generated from gateway/grpc/space_cloud.proto by `python -m gateway.grpc.generate`: do not edit."""\n\n'
            f'PROTO_SHA256 = "{stamp}"\n'
        )
        os.replace(partial, init)
        written.append(init)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure(out: Path = OUT) -> None:
    """Generate the stubs if they are missing or stale; a clear error when that cannot be done."""
    if is_current(out):
        return
    try:
        generate(out)
    except (GenerationError, OSError) as exc:
        raise GenerationError(
            f"the gRPC stubs in {out} are missing or older than {PROTO.name} and cannot be generated ({exc}); "
            "install grpcio-tools and run `python -m gateway.grpc.generate`, or reinstall the package"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.grpc.generate", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"folder to write (default {OUT})")
    p.add_argument("--check", action="store_true", help="only say whether the stubs are current (exit 1 if not)")
    args = p.parse_args(argv)
    if args.check:
        current = is_current(args.out)
        print(f"{args.out}: {'current' if current else 'missing or stale'}")
        return 0 if current else 1
    try:
        written = generate(args.out)
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"generated {len(written)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
