"""`space-cloud run --worker-process` (the default with more than one core): the db worker in a process of
its own, which takes config changes, is part of `/metrics`, comes back when killed and ends with the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.gateway.test_cli_run import cli, home  # noqa: F401 (home is a fixture)
from tests.support.servers import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find processes")

CRUD = "/v1/api/myproject/crud"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _holds(pid: int, name: str) -> bool:
    """Whether process `pid` has a file called `name` open."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd).endswith("/" + name):
                return True
        except OSError:
            continue
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _up(http: httpx.AsyncClient) -> None:
    for _ in range(400):
        try:
            if (await http.get("/v1/api/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("gateway did not come up")


async def _worker_pid(server: int, db: str = "space-cloud.db") -> int:
    """The child of the server that has the SQLite file open (the worker process)."""
    for _ in range(100):
        holders = [p for p in _children(server) if _holds(p, db)]
        if holders:
            return holders[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no child of the server has {db} open")


def _in_a_session_of_its_own(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`space-cloud ...` as its own process group (so a test can signal the whole group)."""
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


async def _write_a_note(port: int) -> None:
    """Once the server is up, one create (so the worker opens the database file)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        await _up(http)
        r = await http.post(f"{CRUD}/sqlite/notes/create", json={"op": "one", "doc": {"id": "n1"}})
        assert r.status_code == 200, r.text


async def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.get_running_loop().run_in_executor(None, lambda: proc.communicate(timeout=30))
    return out


async def test_the_worker_process_serves_the_database_takes_config_changes_and_reports_metrics(
        tmp_path: Path, home: dict[str, str]) -> None:  # noqa: F811
    port = free_port()
    proc = cli("run", "--dev", "--worker-process", "--no-grpc", "--port", str(port), cwd=tmp_path, env=home)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await _up(http)
            r = await http.post(f"{CRUD}/sqlite/notes/create", json={"op": "one", "doc": {"id": "n1"}})
            assert r.status_code == 200, r.text
            worker = await _worker_pid(proc.pid)
            assert worker != proc.pid and not _holds(proc.pid, "space-cloud.db")  # only the worker opens it
            metrics = (await http.get("/metrics")).text
            assert 'sc_db_operations_total{alias="sqlite",op="create",outcome="ok",project="myproject"} 1.0' in metrics
            assert "sc_http_requests_total" in metrics  # the gateway's own beside the worker's

            # a database added through the config API reaches the worker in its process
            second = tmp_path / "second.db"
            r = await http.put("/v1/api/config/projects/myproject/databases/second",
                               json={"type": "sqlite", "conn": str(second)})
            assert r.status_code == 200, r.text
            for op in ("create", "read"):  # a new database allows nothing until its rules say so
                r = await http.put(f"/v1/api/config/projects/myproject/rules/crud/second/things/{op}",
                                   json={"rule": {"rule": "allow"}})
                assert r.status_code == 200, r.text
            r = await http.post(f"{CRUD}/second/things/create", json={"op": "one", "doc": {"id": "t1"}})
            assert r.status_code == 200, r.text
            assert _holds(worker, "second.db")
            r = await http.post(f"{CRUD}/second/things/read", json={"op": "all", "find": {}})
            assert r.json() == {"result": [{"id": "t1"}]}
    finally:
        out = await _stop(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


async def test_a_killed_worker_process_comes_back_and_keeps_every_acknowledged_write(
        tmp_path: Path, home: dict[str, str]) -> None:  # noqa: F811
    port = free_port()
    # a request NATS hands to the killed worker before it notices is answered 504 at the db timeout
    proc = cli("run", "--worker-process", "--no-grpc", "--db-timeout", "2", "--port", str(port), cwd=tmp_path,
               env=home)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await _up(http)
            acked = []
            for n in range(20):
                r = await http.post(f"{CRUD}/sqlite/notes/create", json={"op": "one", "doc": {"id": f"n{n}"}})
                assert r.status_code == 200, r.text
                acked.append(f"n{n}")
            first = await _worker_pid(proc.pid)
            os.kill(first, signal.SIGKILL)
            refused = 0
            for _ in range(300):  # until the new worker answers (every refusal is a clear 5xx, never a hang)
                r = await http.post(f"{CRUD}/sqlite/notes/create", json={"op": "one", "doc": {"id": "after"}})
                if r.status_code == 200:
                    break
                assert r.status_code in (503, 504), r.text
                refused += 1
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the worker process did not come back")
            second = await _worker_pid(proc.pid)
            assert second != first and not _alive(first)
            r = await http.post(f"{CRUD}/sqlite/notes/read", json={"op": "all", "find": {}})
            assert sorted(d["id"] for d in r.json()["result"]) == sorted([*acked, "after"])
    finally:
        out = await _stop(proc)
    assert proc.returncode == 0, out
    assert "starting it again" in out


async def test_the_worker_process_ends_when_the_gateway_is_killed(tmp_path: Path, home: dict[str, str]) -> None:  # noqa: F811
    port = free_port()
    proc = cli("run", "--worker-process", "--no-grpc", "--port", str(port), cwd=tmp_path, env=home)
    try:
        await _write_a_note(port)
        worker = await _worker_pid(proc.pid)
        proc.kill()
        for _ in range(100):
            if not _alive(worker):
                break
            await asyncio.sleep(0.1)
        assert not _alive(worker), "a worker process left behind would hold the database"
    finally:
        await _stop(proc)


async def test_no_worker_process_keeps_the_worker_in_the_gateway(tmp_path: Path, home: dict[str, str]) -> None:  # noqa: F811
    port = free_port()
    proc = cli("run", "--no-worker-process", "--no-grpc", "--port", str(port), cwd=tmp_path, env=home)
    try:
        await _write_a_note(port)
        assert _holds(proc.pid, "space-cloud.db")
        assert not any(_holds(p, "space-cloud.db") for p in _children(proc.pid))
    finally:
        out = await _stop(proc)
    assert proc.returncode == 0, out


async def test_a_sigterm_to_the_whole_group_stops_the_worker_only_after_the_gateway(tmp_path: Path,
                                                                                   home: dict[str, str]) -> None:  # noqa: F811
    """A service manager may signal every process of the server at once (systemd's default): the worker
    must not stop first, while the gateway still finishes its requests."""
    port = free_port()
    proc = _in_a_session_of_its_own("run", "--worker-process", "--no-grpc", "--port", str(port), cwd=tmp_path,
                                    env=home)
    try:
        await _write_a_note(port)
        worker = await _worker_pid(proc.pid)
        os.killpg(proc.pid, signal.SIGTERM)
        out = await _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    lines = out.splitlines()
    gateway_done = next(n for n, line in enumerate(lines) if "Finished server process" in line)
    worker_done = next(n for n, line in enumerate(lines) if "db worker process stopped" in line)
    assert worker_done > gateway_done, out
    assert not _alive(worker)


def test_an_answer_that_comes_after_its_question_timed_out_is_not_taken_for_the_next_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway gives up on a slow answer (its event loop waits meanwhile); that answer, when it comes,
    must not be read as the answer to the next question (metrics read as an update's reply, or the reverse)."""
    import multiprocessing
    import threading

    from common.errors import ServiceUnavailable
    from gateway import workerproc
    from mesh.connect import NatsTarget
    from worker.changelog import ChangeLogOptions

    monkeypatch.setattr(workerproc, "ASK_TIMEOUT", 0.2)
    parent, child = multiprocessing.Pipe()
    wp = workerproc.WorkerProcess(NatsTarget(""), [], options={}, changelog=ChangeLogOptions(),
                                  log_args=("info", "text"))
    wp._pipe = parent

    def slow_worker() -> None:
        number, _ = child.recv()
        threading.Event().wait(0.5)  # past the gateway's patience
        child.send((number, "ok", b"# late\n"))
        number, _ = child.recv()
        child.send((number, "ok", b'sc_db_connected{alias="a",project="p"} 1.0\n'))

    t = threading.Thread(target=slow_worker)
    t.start()
    with pytest.raises(ServiceUnavailable, match="did not answer"):
        wp._ask(("metrics",))
    threading.Event().wait(0.5)  # the late answer is in the pipe now
    families = list(wp.collect())
    t.join(5)
    assert [s.name for f in families for s in f.samples] == ["sc_db_connected"]
