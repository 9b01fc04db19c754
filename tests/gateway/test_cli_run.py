"""`space-cloud run` as a user starts it: embedded NATS + worker + gateway, a service finds it, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh import devstate
from sdk import Mesh
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(tmp_path), "SPACE_CLOUD_HOME": str(tmp_path / ".sc"),
           "PYTHONPATH": str(ROOT)}
    env.pop("SPACE_CLOUD_NATS", None)
    return env


def test_help_is_clear(tmp_path: Path, home: dict[str, str]) -> None:
    for args in ([], ["run", "--help"], ["worker", "--help"], ["init", "--help"]):
        out = subprocess.run([sys.executable, "-m", "gateway.cli", *args, *([] if args else ["--help"])],
                             cwd=tmp_path, env=home, capture_output=True, text=True, check=True).stdout
        assert "usage: space-cloud" in out
    run_help = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--help"], cwd=tmp_path, env=home,
                              capture_output=True, text=True, check=True).stdout
    for flag in ("--port", "--nats", "--config", "--dev"):
        assert flag in run_help


def test_init_writes_a_config_that_loads(tmp_path: Path, home: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "gateway.cli", "init"], cwd=tmp_path, env=home, check=True,
                   capture_output=True)
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith("#") and "projects:" in text
    again = subprocess.run([sys.executable, "-m", "gateway.cli", "init"], cwd=tmp_path, env=home,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr
    from gateway.config import load

    cfg = load(tmp_path / "config.yaml", env={"SC_SECRET": "x" * 32, "ADMIN_PASS": "p", "ADMIN_SECRET": "s" * 32})
    assert "myproject" in cfg.projects
    todos = cfg.projects["myproject"].crud["sqlite"].collections["todos"]
    assert todos.indexes == [("userId",)], "every read the starter's rules allow filters on userId"


def test_bad_config_is_a_clear_error(tmp_path: Path, home: dict[str, str]) -> None:
    (tmp_path / "bad.yaml").write_text("projects: [{id: 'has space', secret: 'x'}]\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", "bad.yaml"], cwd=tmp_path,
                       env=home, capture_output=True, text=True)
    assert r.returncode == 1 and "config error" in r.stderr and "projects[0].id" in r.stderr


async def test_run_serves_and_stops_cleanly(tmp_path: Path, home: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    proc = cli("run", "--port", str(port), cwd=tmp_path, env=home)
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for _ in range(200):
                try:
                    if (await http.get("/v1/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("gateway did not come up")
            info = devstate.read(home=home["SPACE_CLOUD_HOME"])
            assert info is not None and info["nats_url"].startswith("nats://127.0.0.1:")

            # a service started with no NATS URL finds the development server by itself
            monkeypatch.setenv("SPACE_CLOUD_HOME", home["SPACE_CLOUD_HOME"])
            monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
            svc = Mesh("todo")

            @svc.function
            async def stats(params: Any, auth: Any) -> dict[str, Any]:
                return {"count": len(params or [])}

            async with svc:
                r = await http.post("/v1/api/myproject/functions/todo/stats", json={"params": [1, 2, 3],
                                                                                   "timeout": 5000})
                assert r.status_code == 200 and r.json() == {"result": {"count": 3}}
            # the embedded SQLite database works with zero setup
            r = await http.post("/v1/api/myproject/crud/sqlite/notes/create", json={"op": "one",
                                                                                    "doc": {"id": "n1", "t": "hi"}})
            assert r.status_code == 200, r.text
            r = await http.post("/v1/api/myproject/crud/sqlite/notes/read", json={"op": "one", "find": {"id": "n1"}})
            assert r.json() == {"result": {"id": "n1", "t": "hi"}}
        assert (tmp_path / "space-cloud.db").exists()
        nats_pid = _nats_pid(info["nats_url"])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "space-cloud gateway on http://localhost:" in out and "embedded NATS: nats://127.0.0.1:" in out
    assert "Traceback" not in out
    assert devstate.read(home=home["SPACE_CLOUD_HOME"]) is None
    if nats_pid is not None:
        for _ in range(50):
            if not _alive(nats_pid):
                break
            await asyncio.sleep(0.1)
        assert not _alive(nats_pid), "the embedded nats-server must stop with space-cloud"


def _nats_pid(url: str) -> int | None:
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "nats-server" in line and "--ports_file_dir" in line:
            pid = int(line.split()[0])
            try:
                conns = Path(f"/proc/{pid}/net/tcp").read_text()
            except OSError:
                continue
            if f":{int(port):04X} " in conns:
                return pid
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


async def test_run_on_an_existing_nats_with_a_separate_worker(tmp_path: Path, home: dict[str, str],
                                                               nats_url: str) -> None:
    """`run --nats URL --no-worker` + `worker --nats URL --config FILE`: the production shape."""
    (tmp_path / "config.yaml").write_text(
        "projects:\n"
        "  - id: split\n"
        "    secret: a-long-enough-secret-for-this-test-0123456789\n"
        "    modules:\n"
        "      crud:\n"
        "        sqlite:\n"
        "          conn: split.db\n"
        "          collections:\n"
        "            default: {rules: {create: {rule: allow}, read: {rule: allow}}}\n"
    )
    port = free_port()
    gateway = cli("run", "--port", str(port), "--nats", nats_url, "--no-worker", "--config", "config.yaml",
                  cwd=tmp_path, env=home)
    worker = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for _ in range(200):
                try:
                    if (await http.get("/v1/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("gateway did not come up")
            # no embedded NATS, so nothing is advertised to local services
            assert devstate.read(home=home["SPACE_CLOUD_HOME"]) is None
            body = {"op": "one", "doc": {"id": "s1"}}
            r = await http.post("/v1/api/split/crud/sqlite/items/create", json=body)
            assert r.status_code == 503  # --no-worker and no worker yet: a clear answer
            worker = cli("worker", "--nats", nats_url, "--config", "config.yaml", cwd=tmp_path, env=home)
            for _ in range(100):
                r = await http.post("/v1/api/split/crud/sqlite/items/create", json=body)
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            r = await http.post("/v1/api/split/crud/sqlite/items/read", json={"op": "count"})
            assert r.json() == {"result": 1}
        assert (tmp_path / "split.db").exists()
    finally:
        for proc in (worker, gateway):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=20)
                assert proc.returncode == 0, out
                assert "Traceback" not in out
