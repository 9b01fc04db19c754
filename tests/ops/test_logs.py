"""Request ids: accepted when sane, made otherwise, sent back, carried through NATS to services and the
db worker, and in their log lines; `--log-format json` writes one JSON object per line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import parse
from mesh import context
from mesh.logs import JsonFormatter, RequestIdFilter
from mesh.messages import DbRequest
from sdk import Mesh
from tests.support.servers import free_port, gateway, project_config
from worker.service import DbWorker

ROOT = Path(__file__).resolve().parents[2]
ALLOW_ALL = {"enabled": True, "services": {"default": {"functions": {"default": {"rule": {"rule": "allow"}}}}}}
ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


async def test_the_request_id_goes_to_the_service_and_the_worker_and_back(
    tmp_path: Path, nats_url: str, json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = "r" + uuid.uuid4().hex[:8]
    cfg = parse(project_config(project, functions=ALLOW_ALL, crud={
        "lite": {"type": "sqlite", "conn": str(tmp_path / "r.db"), "collections": ALLOW}}), env={})
    svc = Mesh("echo", project=project, nats_url=nats_url)
    svc_log = logging.getLogger("test.service")

    @svc.function
    async def who(params: Any, auth: Any) -> Any:
        svc_log.warning("handling who")
        return context.request_id()

    @svc.function
    async def stuck(params: Any, auth: Any) -> None:
        await asyncio.sleep(30)

    worker = DbWorker(nats_url, databases=cfg.databases())
    run = worker._run

    async def broken(db: Any, adapter: Any, kind: str, req: DbRequest) -> Any:
        if req.col == "boom":
            raise RuntimeError("a bug in the worker")
        return await run(db, adapter, kind, req)

    monkeypatch.setattr(worker, "_run", broken)
    await worker.start()
    try:
        async with svc, gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            url = f"/v1/api/{project}/functions/echo/who"
            r = await http.post(url, json={}, headers={"X-Request-Id": "trace-abc.123"})
            assert r.headers["x-request-id"] == "trace-abc.123" and r.json() == {"result": "trace-abc.123"}
            r = await http.post(url, json={}, headers={"X-Request-Id": "bad id with spaces"})
            made = r.headers["x-request-id"]
            assert made != "bad id with spaces" and r.json() == {"result": made}
            r = await http.post(url, json={})
            assert r.json() == {"result": r.headers["x-request-id"]}
            other = (await http.post(url, json={})).headers["x-request-id"]
            assert other != r.headers["x-request-id"]

            r = await http.post(f"/v1/api/{project}/functions/echo/stuck", json={"timeout": 300},
                                headers={"X-Request-Id": "stuck-1"})
            assert r.status_code == 504 and r.headers["x-request-id"] == "stuck-1"

            r = await http.post(f"/v1/api/{project}/crud/lite/boom/read", json={}, headers={"X-Request-Id": "db-1"})
            assert r.status_code == 500 and r.headers["x-request-id"] == "db-1"
            assert "a bug" not in r.text and "Traceback" not in r.text
            await asyncio.sleep(0.2)  # the runtime's own 504 line comes from its timer
    finally:
        await worker.stop()
    logged = lines(json_log)
    by_id = {e.get("request_id"): e for e in logged if e.get("request_id")}
    assert {"level": "warning", "logger": "test.service", "message": "handling who"}.items() <= \
        by_id["trace-abc.123"].items(), "the service's own line names the request"
    assert "function echo.stuck did not finish" in by_id["stuck-1"]["message"], "so does the runtime's"
    worker_line = by_id["db-1"]
    assert worker_line["logger"] == "space_cloud.service" and "sc-db" in worker_line["message"]
    assert "a bug in the worker" in worker_line["exc"], "the worker's line about the request names it"


def run_cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "SPACE_CLOUD_HOME": str(tmp_path / ".sc")}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def test_log_format_json_from_the_cli(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(project_config("logs", crud={
        "lite": {"type": "sqlite", "conn": str(tmp_path / "l.db"),
                 "collections": {"secret": {"rules": {"read": {"rule": "deny"}}}}}})))
    proc = run_cli(tmp_path, "run", "--config", str(config), "--port", str(port), "--no-grpc", "--log-format", "json",
                   "--log-level", "debug")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(300):
                try:
                    if (await http.get("/v1/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            r = await http.post("/v1/api/logs/crud/lite/secret/read", json={}, headers={"X-Request-Id": "cli-req-7"})
            assert r.status_code in (401, 403) and r.headers["x-request-id"] == "cli-req-7"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    denied = [e for e in entries if e.get("request_id") == "cli-req-7"]
    assert denied and "denied read on lite/secret" in denied[0]["message"], err
