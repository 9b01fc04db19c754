"""`python -m examples.todo`, the README's one command: server + service start, serve, and stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.browser.conftest import EXAMPLE, ROOT
from tests.support.servers import free_port


def test_one_command_starts_and_stops_everything(tmp_path: Path) -> None:
    raw = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    raw["projects"][0]["modules"]["static"]["routes"][0]["path"] = str(EXAMPLE / "public")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))  # todo.db lands next to it, in tmp_path
    port = free_port()
    env = {**os.environ, "SPACE_CLOUD_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.todo", "--config", str(config), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "todo app:" in line or proc.poll() is not None:
                break
        assert any("todo app:" in line for line in lines), "".join(lines)
        with httpx.Client(base_url=base, timeout=10) as http:
            page = http.get("/")
            assert page.status_code == 200 and "Todos" in page.text
            assert http.get("/v1/api/sdk/space-api.js").status_code == 200
            res = http.post("/v1/api/todo-app/auth/db/email/signup",
                            json={"email": "dan@example.com", "name": "Dan", "pass": "a password", "role": "user"})
            assert res.status_code == 200, res.text
            token, uid = res.json()["token"], res.json()["user"]["id"]
            auth = {"Authorization": f"Bearer {token}"}
            todo = {"id": "t1", "userId": uid, "text": "x", "done": True}
            assert http.post("/v1/api/todo-app/crud/db/todos/create", json={"op": "one", "doc": todo},
                             headers=auth).status_code == 200
            # someone else's todo, or no token: refused by the example's rules
            other = {"op": "one", "doc": {**todo, "id": "t2", "userId": "someone-else"}}
            assert http.post("/v1/api/todo-app/crud/db/todos/create", json=other, headers=auth).status_code == 403
            assert http.post("/v1/api/todo-app/crud/db/todos/read", json={"find": {}}).status_code in (401, 403)
            # giving a todo away is refused whatever the operator (the `protected` rule); editing it is not
            for update in ({"$set": {"userId": "x", "text": "y"}}, {"$rename": {"text": "userId"}},
                           {"$max": {"userId": "zzz"}}):
                moved = {"op": "all", "find": {"id": "t1", "userId": uid}, "update": update}
                assert http.post("/v1/api/todo-app/crud/db/todos/update", json=moved, headers=auth).status_code == 403
            edit = {"op": "all", "find": {"id": "t1", "userId": uid}, "update": {"$set": {"text": "y"}}}
            assert http.post("/v1/api/todo-app/crud/db/todos/update", json=edit, headers=auth).status_code == 200
            mine = http.post("/v1/api/todo-app/crud/db/todos/read", json={"find": {"userId": uid}}, headers=auth)
            assert [(t["userId"], t["text"]) for t in mine.json()["result"]] == [(uid, "y")]
            # the service, started by the same command
            for _ in range(50):
                res = http.post("/v1/api/todo-app/functions/todo/summary",
                                json={"params": {"todos": mine.json()["result"]}, "timeout": 5000}, headers=auth)
                if res.status_code != 503:
                    break
                time.sleep(0.1)
            assert res.status_code == 200, res.text
            assert res.json()["result"]["message"] == "All 1 done. Nice work!"
            assert http.post("/v1/api/todo-app/functions/todo/summary",
                             json={"params": {"todos": []}}).status_code in (401, 403)
        assert (tmp_path / "todo.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    with httpx.Client(timeout=2) as http:
        try:
            http.get(base + "/v1/api/health")
            raise AssertionError("the server still answers after Ctrl-C")
        except httpx.TransportError:
            pass
