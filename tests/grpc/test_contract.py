"""The `.proto` is Space Cloud's contract (shared/spec/space-cloud-wire.md §11), and its stubs are generated:
by `python -m gateway.grpc.generate`, again when stale, and into the wheel by the package build."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from gateway.grpc import generate
from gateway.grpc.stubs import pb

ROOT = Path(__file__).resolve().parents[2]
T = FieldDescriptor
S, B, I32, I64, BOOL, MSG = T.TYPE_STRING, T.TYPE_BYTES, T.TYPE_INT32, T.TYPE_INT64, T.TYPE_BOOL, T.TYPE_MESSAGE

SPEC: dict[str, list[tuple[str, int, int]]] = {
    "Meta": [("project", 1, S), ("dbType", 2, S), ("col", 3, S), ("token", 4, S)],
    "Response": [("status", 1, I32), ("error", 2, S), ("result", 3, B)],
    "CreateRequest": [("document", 1, B), ("operation", 2, S), ("meta", 3, MSG)],
    "ReadRequest": [("find", 1, B), ("operation", 2, S), ("options", 3, MSG), ("meta", 4, MSG)],
    "ReadOptions": [("select", 1, MSG), ("sort", 2, MSG), ("skip", 3, I64), ("limit", 4, I64), ("distinct", 5, S)],
    "UpdateRequest": [("find", 1, B), ("operation", 2, S), ("update", 3, B), ("meta", 4, MSG)],
    "DeleteRequest": [("find", 1, B), ("operation", 2, S), ("meta", 3, MSG)],
    "AggregateRequest": [("pipeline", 1, B), ("operation", 2, S), ("meta", 3, MSG)],
    "AllRequest": [("col", 1, S), ("document", 2, B), ("operation", 3, S), ("find", 4, B), ("update", 5, B),
                   ("type", 6, S)],
    "BatchRequest": [("batchrequest", 1, MSG), ("meta", 2, MSG)],
    "FunctionsRequest": [("params", 1, B), ("timeout", 2, I64), ("service", 3, S), ("function", 4, S),
                         ("token", 5, S), ("project", 6, S)],
    "FunctionsPayload": [("auth", 1, B), ("params", 2, B), ("service", 3, S), ("function", 4, S), ("type", 5, S),
                         ("id", 6, S), ("error", 7, S), ("project", 8, S), ("token", 9, S)],
    "RealTimeRequest": [("token", 1, S), ("dbType", 2, S), ("project", 3, S), ("group", 4, S), ("type", 5, S),
                        ("id", 6, S), ("where", 7, B), ("options", 8, B)],
    "RealTimeResponse": [("group", 1, S), ("id", 2, S), ("ack", 3, BOOL), ("error", 4, S), ("feedData", 5, MSG)],
    "FeedData": [("queryId", 1, S), ("docId", 2, S), ("type", 3, S), ("group", 4, S), ("dbType", 5, S),
                 ("payload", 6, B), ("timeStamp", 7, I64)],
    "ProfileRequest": [("id", 1, S), ("meta", 2, MSG)],
    "ProfilesRequest": [("meta", 1, MSG)],
    "EditProfileRequest": [("id", 1, S), ("email", 2, S), ("name", 3, S), ("password", 4, S), ("meta", 5, MSG)],
    "SignInRequest": [("email", 1, S), ("password", 2, S), ("meta", 3, MSG)],
    "SignUpRequest": [("email", 1, S), ("name", 2, S), ("password", 3, S), ("role", 4, S), ("meta", 5, MSG)],
    "CreateFolderRequest": [("path", 1, S), ("name", 2, S), ("meta", 3, MSG)],
    "ListFilesRequest": [("path", 1, S), ("meta", 2, MSG)],
    "DeleteFileRequest": [("path", 1, S), ("meta", 2, MSG)],
    "DownloadFileRequest": [("path", 1, S), ("meta", 2, MSG)],
    "UploadFileRequest": [("path", 1, S), ("name", 2, S), ("payload", 3, B), ("meta", 4, MSG)],
    "FilePayload": [("status", 1, I32), ("error", 2, S), ("payload", 3, B)],
    "PubsubPublishRequest": [("subject", 1, S), ("msg", 2, B), ("meta", 3, MSG)],
    "PubsubSubscribeRequest": [("subject", 1, S), ("queue", 2, S), ("type", 3, S), ("token", 4, S),
                               ("project", 5, S), ("id", 6, S)],
    "PubsubMsgResponse": [("id", 1, S), ("type", 2, S), ("status", 3, I32), ("error", 4, S), ("msg", 5, B)],
}
ADDITIONS = {"RealTimeResponse": [("resumed", 100, BOOL), ("reset", 101, BOOL), ("time", 102, I64)]}
UNARY = ("Create Read Update Delete Aggregate Batch Call Profile Profiles EditProfile SignIn SignUp CreateFolder "
         "ListFiles DeleteFile PubsubPublish").split()
STREAMS = {"RealTime": (True, True), "Service": (True, True), "PubsubSubscribe": (True, True),
           "UploadFile": (True, False), "DownloadFile": (False, True)}


def test_every_message_and_field_number_is_the_spec() -> None:
    assert pb.DESCRIPTOR.package == "proto"
    messages = pb.DESCRIPTOR.message_types_by_name
    assert set(messages) == set(SPEC)
    for name, fields in SPEC.items():
        found = [(f.name, f.number, f.type) for f in messages[name].fields]
        assert found == fields + ADDITIONS.get(name, []), name
    repeated = {(m, f.name) for m in messages for f in messages[m].fields if f.is_repeated}
    assert repeated == {("ReadOptions", "select"), ("ReadOptions", "sort"), ("BatchRequest", "batchrequest"),
                        ("RealTimeResponse", "feedData")}
    select = messages["ReadOptions"].fields_by_name["select"].message_type
    assert select is not None and select.GetOptions().map_entry and [f.type for f in select.fields] == [S, I32]


def test_every_rpc_of_proto_spacecloud() -> None:
    service = pb.DESCRIPTOR.services_by_name["SpaceCloud"]
    assert service.full_name == "proto.SpaceCloud"
    methods = {m.name: m for m in service.methods}
    assert set(methods) == set(UNARY) | set(STREAMS)
    for name in UNARY:
        assert (methods[name].client_streaming, methods[name].server_streaming) == (False, False), name
        assert methods[name].output_type.name == "Response"
    for name, streaming in STREAMS.items():
        assert (methods[name].client_streaming, methods[name].server_streaming) == streaming, name


def test_the_generator_writes_stubs_and_tells_stale_ones(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert not generate.is_current(out)
    written = {p.name for p in generate.generate(out)}
    assert {"__init__.py", "space_cloud_pb2.py", "space_cloud_pb2_grpc.py", "space_cloud_pb2.pyi"} <= written
    assert generate.is_current(out)
    assert "from gateway.grpc._generated import space_cloud_pb2" in (out / "space_cloud_pb2_grpc.py").read_text()
    changed = tmp_path / "space_cloud.proto"
    changed.write_text(generate.PROTO.read_text() + "\nmessage Extra { string x = 1; }\n")
    assert not generate.is_current(out, proto=changed)
    (out / "space_cloud_pb2.py").unlink()
    assert not generate.is_current(out)
    generate.ensure(out)  # missing again: generated again
    assert generate.is_current(out) and not list(out.glob(".gen-*"))
    check = subprocess.run([sys.executable, "-m", "gateway.grpc.generate", "--check", "--out", str(out)],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0 and "current" in check.stdout
    shutil.rmtree(out)
    check = subprocess.run([sys.executable, "-m", "gateway.grpc.generate", "--check", "--out", str(out)],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 1 and "missing or stale" in check.stdout


@pytest.mark.slow
def test_the_wheel_carries_generated_stubs(tmp_path: Path) -> None:
    """`pip install .` on a fresh machine serves gRPC without grpcio-tools: the build generates the stubs."""
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the repository's files cannot be told from generated ones")
    files = listed.stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    assert not (src / "gateway" / "grpc" / "_generated").exists()  # nothing generated is in the repository
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                        str(src)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and ("Could not find a version" in r.stderr or "connection" in r.stderr.lower()):
        pytest.skip(f"cannot fetch the build requirements (grpcio-tools) from PyPI: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        stamp = z.read("gateway/grpc/_generated/__init__.py").decode()
    assert {"gateway/grpc/space_cloud.proto", "gateway/grpc/_generated/space_cloud_pb2.py",
            "gateway/grpc/_generated/space_cloud_pb2_grpc.py"} <= names
    assert generate.fingerprint() in stamp
