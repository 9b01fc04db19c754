"""Live queries read the change log by position: resumes by cursor of any size, paced on the socket's
queue; a gap the log no longer covers is a reset, never silence; without a log, a resume is a reset."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from gateway.config import parse
from gateway.live.manager import LOG_GAP
from mesh.changelog import STREAM, api
from mesh.natsd import EmbeddedNats, find_binary
from tests.support.changelog import outside, table
from tests.support.faults import StallProxy
from tests.support.live import LiveClient
from tests.support.servers import free_port, gateway, project_config
from tests.support.stack import stack
from worker import DbWorker
from worker.changelog import ChangeLogOptions

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


def col() -> str:
    return "c" + uuid.uuid4().hex[:10]


async def test_a_resume_far_larger_than_the_socket_queue_is_paced(tmp_path: Path, nats_url: str) -> None:
    c = col()
    async with stack("sqlite", tmp_path, nats_url, collections=ALLOW, settings={"ws_queue": 16}) as st:
        first = await LiveClient.connect(st.gw.ws_url, st.project)
        ack = await first.subscribe("q", c, st.alias, {})
        await first.close()
        cursor = ack["cursor"]
        docs = [{"id": f"d{n:03d}", "n": n} for n in range(400)]
        r = await st.http.post(st.crud(c, "create"), json={"op": "all", "doc": docs})
        assert r.status_code == 200, r.text
        again = await LiveClient.connect(st.gw.ws_url, st.project)
        try:
            ack = await again.subscribe("q", c, st.alias, {}, cursor=cursor)
            assert ack.get("resumed") is True and ack["docs"] == []
            await again.until(lambda: len(again.snapshot("q")) == 400)
            assert not again.closed.done(), "never closed as a slow consumer"
            cursors = [f["cursor"] for f in again.feeds if "cursor" in f]
            assert cursors, "replayed pages carry the position reached"
            # and from the last cursor, nothing is missed and nothing replayed again
            r = await st.http.post(st.crud(c, "create"), json={"doc": {"id": "late"}})
            await again.until(lambda: "late" in again.snapshot("q"))
            last = again.feeds[-1]["cursor"]
        finally:
            await again.close()
        third = await LiveClient.connect(st.gw.ws_url, st.project)
        try:
            ack = await third.subscribe("q", c, st.alias, {}, cursor=last)
            assert ack.get("resumed") is True
            await asyncio.sleep(0.3)
            assert third.feeds == []
            nack = await third.subscribe("bad", c, st.alias, {}, cursor="not a cursor")
            assert nack["ack"] is False and "cursor" in nack["error"]
        finally:
            await third.close()


async def test_changes_the_log_lost_while_a_gateway_was_cut_off_are_a_reset(tmp_path: Path) -> None:
    server = EmbeddedNats(store_dir=str(tmp_path / "js"))
    url = server.start()
    project, c = "gap" + uuid.uuid4().hex[:6], col()
    conn = str(tmp_path / "gap.db")
    cfg = parse(project_config(project, crud={"db": {"type": "sqlite", "conn": conn, "collections": ALLOW}}), env={})
    worker = DbWorker(url, databases=cfg.databases(), changelog=ChangeLogOptions(poll=0.1))
    await worker.start()
    port = int(url.rsplit(":", 1)[1])
    try:
        async with StallProxy("127.0.0.1", port) as proxy, \
                gateway(cfg, f"nats://127.0.0.1:{proxy.port}") as gw, \
                httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            r = await http.post(f"/v1/api/{project}/crud/db/{c}/create", json={"doc": {"id": "first"}})
            assert r.status_code == 200
            lc = await LiveClient.connect(gw.ws_url, project)
            await lc.subscribe("q", c, "db", {})
            proxy.cut()
            await outside("sqlite", conn, [(f"INSERT INTO {table('sqlite', project, c)} (id, doc, _v) "  # noqa: S608
                                            "VALUES ('while-cut', '{}', 0)", [])])
            nc = await nats.connect(url)
            try:
                for _ in range(100):  # published by the worker, then gone before the gateway read it
                    info = await api(nc, f"$JS.API.STREAM.INFO.{STREAM}")
                    if info["state"]["last_seq"] >= 2:
                        break
                    await asyncio.sleep(0.05)
                await api(nc, f"$JS.API.STREAM.PURGE.{STREAM}", {})
            finally:
                await nc.close()
            proxy.resume()
            code, _ = await asyncio.wait_for(lc.closed, 20)
            assert code == LOG_GAP
            again = await LiveClient.connect(gw.ws_url, project)
            try:
                again.rows = lc.rows
                ack = await again.subscribe("q", c, "db", {}, resumeFrom=lc.last_time["q"])
                assert ack.get("reset") is True
                assert sorted(f["docId"] for f in ack["docs"]) == ["first", "while-cut"]
            finally:
                await again.close()
    finally:
        await worker.stop()
        server.stop()


async def test_without_a_change_log_a_resume_is_a_fresh_snapshot(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(find_binary(), "-a", "127.0.0.1", "-p", str(port),  # no JetStream
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                nc = await nats.connect(url)
                await nc.close()
                break
            except Exception:  # not listening yet
                await asyncio.sleep(0.05)
        project, c = "nolog" + uuid.uuid4().hex[:6], col()
        raw: dict[str, Any] = project_config(project, crud={"db": {"type": "sqlite", "conn": str(tmp_path / "n.db"),
                                                                   "collections": ALLOW}})
        cfg = parse(raw, env={})
        worker = DbWorker(url, databases=cfg.databases())
        await worker.start()
        try:
            async with gateway(cfg, url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
                r = await http.post(f"/v1/api/{project}/crud/db/{c}/create", json={"doc": {"id": "x"}})
                assert r.status_code == 200
                lc = await LiveClient.connect(gw.ws_url, project)
                try:
                    ack = await lc.subscribe("q", c, "db", {}, resumeFrom=1)
                    assert ack.get("reset") is True and [f["docId"] for f in ack["docs"]] == ["x"]
                finally:
                    await lc.close()
        finally:
            await worker.stop()
    finally:
        proc.kill()
        await proc.wait()


@pytest.fixture(autouse=True)
def _quiet_nats_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="space_cloud.nats")
