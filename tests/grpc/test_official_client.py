"""Space Cloud's official Python client (`space-api-py` 0.9.1, which speaks only gRPC), unchanged, on every
database: sign-up/sign-in, CRUD with conditions, batch, a live query, a call to a Python service, and a
service registered over the `Service` stream and called over HTTP (tests/grpc/official/run_client.py).

The client needs protobuf 3.20, so it runs in a virtualenv of its own, made once and cached
(`~/.cache/space-cloud-py/`). Without PyPI the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Mesh
from tests.grpc.support import grpc_for
from tests.support.stack import database_params, stack

pytestmark = pytest.mark.slow

CLIENT = "space-api-py==0.9.1"
SCRIPT = Path(__file__).with_name("official") / "run_client.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "space-cloud-py" / "space-api-py-0.9.1"
OWNER = {"rule": "match", "eval": "==", "type": "string", "f2": "args.auth.id"}
OWNED = {"create": {**OWNER, "f1": "args.doc.userId"}, "read": {**OWNER, "f1": "args.find.userId"},
         "update": {**OWNER, "f1": "args.find.userId"}, "delete": {**OWNER, "f1": "args.find.userId"}}


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def official_python() -> Iterator[Path]:
    """The python of a virtualenv with the official client and protobuf 3.20 (its generated code needs them).

    The client declares grpcio-tools as a dependency but never imports it, and no grpcio-tools wheel for
    this Python accepts protobuf 3.20: the client goes in without dependencies, grpcio and protobuf beside it."""
    python = CACHE / "bin" / "python"
    ready = CACHE / ".ready"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / ".space-api-py.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ready.exists() and _works(python)):  # made once; made again if the cached one broke
            ready.unlink(missing_ok=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(CACHE)], check=True, timeout=300)
            first = _pip(python, "--no-deps", CLIENT)
            if first.returncode != 0:
                pytest.skip(f"cannot install {CLIENT} from PyPI (unreachable?): {first.stderr.strip()[-300:]}")
            rest = _pip(python, "grpcio", "protobuf==3.20.*")
            if rest.returncode != 0:
                pytest.skip(f"cannot install grpcio and protobuf 3.20 from PyPI: {rest.stderr.strip()[-300:]}")
            assert _works(python), "the official client does not import in its virtualenv"
            ready.write_text(f"{CLIENT}\n")
    yield python


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import space_api, google.protobuf as p; print(p.__version__)"],
                           capture_output=True, text=True, timeout=60)
    return probe.returncode == 0 and probe.stdout.startswith("3.20")


@contextlib.asynccontextmanager
async def python_service(name: str, project: str, nats_url: str) -> AsyncIterator[Mesh]:
    svc = Mesh(name, project=project, nats_url=nats_url)

    @svc.function
    async def add(params: dict[str, Any], auth: Any) -> dict[str, Any]:
        return {"sum": params["a"] + params["b"], "caller": (auth or {}).get("id")}

    async with svc:
        yield svc


@pytest.mark.parametrize("db", database_params())
async def test_the_official_python_client_works_unchanged(db: str, tmp_path: Path, nats_url: str,
                                                          official_python: Path) -> None:
    run = uuid.uuid4().hex[:8]
    items, live, pysvc, streamsvc = f"items{run}", f"live{run}", f"py{run}", f"grpcsvc{run}"
    collections = {items: {"rules": OWNED}, live: {"isRealtimeEnabled": True, "rules": OWNED},
                   "users": {"rules": {"read": {"rule": "authenticated"}}}}
    functions = {"enabled": True, "services": {
        pysvc: {"functions": {"default": {"rule": {"rule": "authenticated"}}}},
        streamsvc: {"functions": {"default": {"rule": {"rule": "authenticated"}}},
                    "register": {"rule": "authenticated"}},
    }}
    async with (
        stack(db, tmp_path, nats_url, collections=collections, functions=functions,
              auth={"email": {"enabled": True}, "tokenTTL": 600}) as st,
        grpc_for(st.gw) as rpc,
        python_service(pysvc, st.project, nats_url),
    ):
        cfg = {"target": rpc.target, "http": st.gw.url, "project": st.project, "alias": st.alias, "id": st.id,
               "items": items, "live": live, "python_service": pysvc, "stream_service": streamsvc}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            str(official_python), str(SCRIPT), json.dumps(cfg),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 180)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
            raise AssertionError(f"the official client did not finish:\n{out.decode()}") from None
        text = out.decode()
        checks = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert proc.returncode == 0 and text.rstrip().endswith("OK"), text
        assert all(c["ok"] for c in checks) and len(checks) >= 25, text
        names = {c["check"] for c in checks}
        assert {"sign_in", "batch", "live: insert", "live: update", "live: delete", "call a Python service",
                "a service on the Service stream answers over HTTP"} <= names
        print(f"official client on {db}: {len(checks)} checks in {time.monotonic() - started:.1f} s")
