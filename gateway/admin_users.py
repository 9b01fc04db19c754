"""Mission Control's users view, for admins (`/v1/api/config/projects/<project>/users/<alias>...`).

- `GET    users/<alias>?q=&skip=&limit=`: the email users of that database, sorted by email; `q` finds an
  exact id or a prefix of the email or the name. Never a hash (they live in `_sc_credentials`, and
  `redact` takes out any an earlier version left in `users`).
- `POST   users/<alias>/<id>` `{role?, disabled?}`: change a user's role, disable or enable them.
- `DELETE users/<alias>/<id>`: delete the user and their credentials.
- `POST   users/<alias>/<id>/password` `{pass}`: set a new password (hashed by the users feature).

A disabled user cannot sign in, and every gateway refuses their tokens: `DisabledUsers` keeps
`Security.disabled` current from the `users` collections (read at start, every minute and after a config
change) and from their change events, so a disable on one gateway holds on all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol
from urllib.parse import parse_qs

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from common.errors import BadRequest, NotFound, ServiceUnavailable, SpaceCloudError, Timeout
from gateway.admin import Admin
from gateway.config import USERS, Config, DbConfig, ProjectConfig
from gateway.core import Core
from gateway.dbrequests import database
from gateway.http import Request
from gateway.security import Security, redact
from mesh.messages import ChangeEvent, DbRequest

log = logging.getLogger("space_cloud.admin")

LIST_LIMIT = 200
REFRESH_EVERY = 60.0
"""Seconds between full reads of who is disabled (change events keep it current in between)."""
RETRY_AFTER = 2.0
"""Seconds before trying again when a database did not answer (at start, the workers may not be up yet)."""
READ_TIMEOUT = 10.0
USER_CHANGES = "sc.*.changes.*." + USERS
"""Change events of every project's `users`, on every alias."""


class Accounts(Protocol):
    """What the users feature (`gateway.users.Users`) does for the admin: what touches credentials."""

    async def set_password(self, project_id: str, alias: str, uid: str, password: str) -> None: ...

    async def delete(self, project_id: str, alias: str, uid: str) -> dict[str, Any]: ...


def _query(request: Request) -> dict[str, str]:
    raw = parse_qs(bytes(request.scope.get("query_string") or b"").decode("latin-1"))
    return {k: v[-1] for k, v in raw.items()}


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"`{name}` must be an integer") from None
    if not low <= number <= high:
        raise BadRequest(f"`{name}` must be from {low} to {high}")
    return number


def search(q: str, id_field: str) -> dict[str, Any]:
    """The find for a search box: an exact id, or a prefix of the email (stored lowercase) or of the name."""
    q = q.strip()
    if not q:
        return {}
    prefix = q.lower()
    return {"$or": [{id_field: q}, {"email": {"$gte": prefix, "$lt": prefix + "\uffff"}},
                    {"name": {"$gte": q, "$lt": q + "\uffff"}}]}


class AdminUsers:
    def __init__(self, admin: Admin, accounts: Accounts) -> None:
        self.admin = admin
        self.core = admin.core
        self.security = admin.security
        self.accounts = accounts

    def _target(self, request: Request) -> tuple[ProjectConfig, DbConfig]:
        project = self.admin.project(request)
        if not project.auth.email_enabled:
            raise NotFound(f"email sign-in is not enabled for project {project.id!r} (modules.auth.email)")
        return project, database(project, request.params["alias"])

    async def _get(self, project: ProjectConfig, db: DbConfig, uid: str) -> dict[str, Any]:
        try:
            user: dict[str, Any] = await self.core.db_request(project.id, db.alias, "read", DbRequest(
                col=USERS, op="one", find={db.id_field: uid}))
        except NotFound:
            raise NotFound(f"no user with id {uid!r}") from None
        return user

    async def http_list(self, request: Request) -> dict[str, Any]:
        self.admin.check(request)
        project, db = self._target(request)
        query = _query(request)
        find = search(query.get("q", ""), db.id_field)
        skip = _int(query.get("skip"), "skip", 0, 0, 10**9)
        limit = _int(query.get("limit"), "limit", 50, 1, LIST_LIMIT)
        read = DbRequest(col=USERS, op="all", find=find, options={"sort": {"email": 1}, "skip": skip, "limit": limit})
        count = DbRequest(col=USERS, op="count", find=find)
        users, total = await asyncio.gather(self.core.db_request(project.id, db.alias, "read", read),
                                            self.core.db_request(project.id, db.alias, "read", count))
        return {"users": redact(USERS, users), "total": total, "idField": db.id_field}

    async def http_update(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project, db = self._target(request)
        uid = request.params["uid"]
        body = await self.admin.body(request)
        changes: dict[str, Any] = {}
        if "role" in body:
            if not isinstance(body["role"], str) or not body["role"].strip():
                raise BadRequest("`role` must be a non-empty string")
            changes["role"] = body["role"].strip()
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise BadRequest("`disabled` must be true or false")
            changes["disabled"] = body["disabled"]
        unknown = set(body) - {"role", "disabled"}
        if unknown or not changes:
            raise BadRequest("send `role` and/or `disabled` (email, name and password have their own ways)")
        user = await self._get(project, db, uid)
        await self.core.db_request(project.id, db.alias, "update", DbRequest(
            col=USERS, op="one", find={db.id_field: user[db.id_field]}, update={"$set": changes}))
        if "disabled" in changes:  # at once here; other gateways follow the change event
            key = (project.id, str(user[db.id_field]))
            if changes["disabled"]:
                self.security.disabled.add(key)
            else:
                self.security.disabled.discard(key)
        log.info("admin %s: user %s of %s/%s: %s", name, uid, project.id, db.alias,
                 ", ".join(f"{k}={v}" for k, v in changes.items()))
        return {"user": redact(USERS, {**user, **changes})}

    async def http_delete(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project, db = self._target(request)
        user = await self.accounts.delete(project.id, db.alias, request.params["uid"])
        self.security.disabled.add((project.id, str(user.get(db.id_field))))  # their tokens end with them
        log.info("admin %s: deleted user %s of %s/%s", name, request.params["uid"], project.id, db.alias)
        return {"user": redact(USERS, user)}

    async def http_password(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project, db = self._target(request)
        password = (await self.admin.body(request)).get("pass")
        if not isinstance(password, str) or not password:
            raise BadRequest("`pass` must be a non-empty string")
        await self.accounts.set_password(project.id, db.alias, request.params["uid"], password)
        log.info("admin %s: reset the password of user %s of %s/%s", name, request.params["uid"], project.id,
                 db.alias)
        return {}


class DisabledUsers:
    """Keeps `Security.disabled` current on this gateway: a full read of every email project's `users`
    (`disabled: true`) at start, every `REFRESH_EVERY` seconds and after a config change, and in between
    the change events of `users` on every alias (a delete also ends the user's tokens)."""

    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._seen: dict[tuple[str, str], bool] = {}
        """What change events said during a full read (they are newer than what that read may return)."""
        self.deleted: set[tuple[str, str]] = set()
        """Users deleted while this gateway runs (a full read cannot find them); a new sign-up clears one."""

    async def start(self) -> None:
        self._sub = await self.core.nc.subscribe(USER_CHANGES, cb=self._on_change)
        self.core.config_listeners.append(self._on_config)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._on_config in self.core.config_listeners:
            self.core.config_listeners.remove(self._on_config)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _on_config(self, _config: Config) -> None:
        self._wake.set()

    async def _on_change(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        if len(parts) != 5:
            return
        try:
            change = ChangeEvent.decode(msg.data)
        except BadRequest:
            return
        key = (parts[1], str(change.id))
        off = change.type == "delete" or (change.doc or {}).get("disabled") is True
        self._seen[key] = off
        if change.type == "delete":
            self.deleted.add(key)
        elif change.type == "insert":
            self.deleted.discard(key)
        if off:
            self.security.disabled.add(key)
        else:
            self.security.disabled.discard(key)

    async def _loop(self) -> None:
        while True:
            complete = False
            with contextlib.suppress(Exception):
                complete = await self.refresh()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_EVERY if complete else RETRY_AFTER):
                    await self._wake.wait()

    async def _disabled_in(self, project: ProjectConfig, db: DbConfig) -> set[tuple[str, str]] | None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                found = await self.core.db_request(project.id, db.alias, "read", DbRequest(
                    col=USERS, op="all", find={"disabled": True}, options={"select": {db.id_field: 1}}))
        except (ServiceUnavailable, Timeout, TimeoutError):
            return None  # that database is away: what is known of it stays as it is
        except SpaceCloudError:
            return set()  # it cannot hold the flag (a typed `users` table without `disabled`): nobody is
        return {(project.id, str(u.get(db.id_field))) for u in found if isinstance(u, dict)}

    async def refresh(self) -> bool:
        """One full read; what an unreachable database said last time is kept. False when one did not answer."""
        self._seen = {}
        places = [(p, db) for p in self.core.config.projects.values() if p.auth.email_enabled
                  for db in p.crud.values()]
        results = await asyncio.gather(*(self._disabled_in(p, db) for p, db in places))
        unreachable = {p.id for (p, _), found in zip(places, results, strict=True) if found is None}
        fresh: set[tuple[str, str]] = {key for key in self.security.disabled if key[0] in unreachable}
        for found in results:
            fresh |= found or set()
        fresh |= self.deleted
        for key, off in self._seen.items():
            if off:
                fresh.add(key)
            else:
                fresh.discard(key)
        self.security.disabled.clear()
        self.security.disabled.update(fresh)
        return not unreachable
