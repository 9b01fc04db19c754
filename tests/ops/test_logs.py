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
    tmp_path: Path, nats_url: str, json_log: io.StringIO,
) -> None:
    project = "r" + uuid.uuid4().hex[:8]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    cfg = parse(project_config(project, functions=ALLOW_ALL, crud={
        "pg": {"type": "postgres", "conn": dead, "collections": ALLOW}}), env={})
    svc = Mesh("echo", project=project, nats_url=nats_url)
    svc_log = logging.getLogger("test.service")

    @svc.function
    async def who(params: Any, auth: Any) -> Any:
        svc_log.warning("handling who")
        return context.request_id()

    worker = DbWorker(nats_url, databases=cfg.databases(), connect_timeout=1.0)
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

            r = await http.post(f"/v1/api/{project}/crud/pg/t/read", json={}, headers={"X-Request-Id": "db-req-1"})
            assert r.status_code == 503 and r.headers["x-request-id"] == "db-req-1"
            assert "Traceback" not in r.text
    finally:
        await worker.stop()
    logged = lines(json_log)
    assert {"level": "warning", "logger": "test.service", "message": "handling who",
            "request_id": "trace-abc.123"}.items() <= next(
        e for e in logged if e.get("request_id") == "trace-abc.123").items()
    connect = [e for e in logged if e["logger"] == "space_cloud.worker" and "connect failed" in e["message"]]
    assert connect and connect[0]["request_id"] == "db-req-1", "the worker's line about the request names it"


def run_cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "SPACE_CLOUD_HOME": str(tmp_path / ".sc")}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def test_log_format_json_from_the_cli(tmp_path: Path) -> None:
    port = free_port()
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(project_config("logs", crud={
        "pg": {"type": "postgres", "conn": dead, "collections": ALLOW}})))
    proc = run_cli(tmp_path, "run", "--config", str(config), "--port", str(port), "--no-grpc", "--log-format", "json",
                   "--db-connect-timeout", "1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(300):
                try:
                    if (await http.get("/v1/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            r = await http.post("/v1/api/logs/crud/pg/t/read", json={}, headers={"X-Request-Id": "cli-req-7"})
            assert r.status_code == 503
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert any(e.get("request_id") == "cli-req-7" and "connect failed" in e["message"] for e in entries), err
