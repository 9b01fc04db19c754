"""Email users (Space Cloud §6): sign-up, sign-in, profiles, edit profile. Users live in `users`."""

from __future__ import annotations

import re
import uuid
from typing import Any

from common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from gateway import tokens
from gateway.config import ProjectConfig
from gateway.core import Core
from gateway.dbrequests import database
from gateway.http import Request
from gateway.passwords import FailedSignIns, Passwords
from gateway.security import Security
from mesh.messages import DbRequest

USERS = "users"
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
USER_NAMESPACE = uuid.UUID("0b5e9a8e-6d1c-4b7e-9a59-2f1d3c4e5a60")


def user_id(email: str) -> str:
    """Ids are derived from the normalised email, so a duplicate sign-up collides on the primary key
    (atomically, on every database and across gateways) and is a 409."""
    return uuid.uuid5(USER_NAMESPACE, email).hex


def normalise_email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL_RE.match(value.strip()):
        raise BadRequest("`email` must be an email address")
    return value.strip().lower()


def public(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "pass"}


def _strings(body: dict[str, Any], *keys: str) -> list[str]:
    out = []
    for key in keys:
        value = body.get(key)
        if not isinstance(value, str):
            raise BadRequest(f"`{key}` must be a string")
        out.append(value)
    return out


class Users:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self.passwords = Passwords()
        self.failures = FailedSignIns()

    def _project(self, project_id: str, alias: str) -> tuple[ProjectConfig, str]:
        project = self.core.project(project_id)
        if not project.auth.email_enabled:
            raise NotFound("Email sign in feature is not enabled")
        return project, database(project, alias).id_field

    def _token(self, project: ProjectConfig, user: dict[str, Any], id_field: str) -> str:
        claims = {"id": user[id_field], "email": user.get("email"), "role": user.get("role")}
        return tokens.issue(claims, secret=project.secret, project=project.id, ttl=project.auth.token_ttl)

    async def _db(self, project: ProjectConfig, alias: str, kind: str, req: DbRequest) -> Any:
        return await self.core.db_request(project.id, alias, kind, req)

    async def signup(self, project_id: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        raw_email, name, password = _strings(body, "email", "name", "pass")
        role = body.get("role", "user")
        if not isinstance(role, str):
            raise BadRequest("`role` must be a string")
        email = normalise_email(raw_email)
        if not password:
            raise BadRequest("`pass` must not be empty")
        allowed = project.auth.signup_roles
        if role not in allowed:
            raise Forbidden(f"role {role!r} cannot be chosen at sign-up (allowed: {', '.join(map(str, allowed))})")
        user = {id_field: user_id(email), "email": email, "name": name, "role": role}
        stored = {**user, "pass": await self.passwords.hash(password)}
        try:
            await self._db(project, alias, "create", DbRequest(col=USERS, op="one", doc=stored))
        except Conflict:
            raise Conflict("User with provided email already exists") from None
        return {"user": user, "token": self._token(project, user, id_field)}

    async def signin(self, project_id: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        raw_email, password = _strings(body, "email", "pass")
        email = normalise_email(raw_email)
        self.failures.check(email)
        try:
            user = await self._db(project, alias, "read", DbRequest(col=USERS, op="one", find={"email": email}))
        except NotFound:
            self.failures.failed(email)
            raise NotFound("User not found") from None
        stored = user.get("pass") if isinstance(user, dict) else None
        if not isinstance(stored, str) or not await self.passwords.verify(stored, password):
            self.failures.failed(email)
            raise Unauthorized("Given credentials are not correct")
        self.failures.succeeded(email)
        return {"user": public(user), "token": self._token(project, user, id_field)}

    async def _read_rule(self, project: ProjectConfig, alias: str, op: str, find: dict[str, Any],
                         token: str | None) -> DbRequest:
        db = database(project, alias)
        req = DbRequest(col=USERS, op=op, find=find)
        return await self.security.crud(project, db, USERS, "read", req, self.security.claims(project, token), token)

    async def profile(self, project_id: str, alias: str, uid: str, token: str | None) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        req = await self._read_rule(project, alias, "one", {id_field: uid}, token)
        try:
            user = await self._db(project, alias, "read", req)
        except NotFound:
            raise NotFound("User not found") from None
        return {"user": public(user)}

    async def profiles(self, project_id: str, alias: str, token: str | None) -> dict[str, Any]:
        project, _ = self._project(project_id, alias)
        req = await self._read_rule(project, alias, "all", {}, token)
        users = await self._db(project, alias, "read", req)
        return {"users": [public(u) for u in users]}

    async def edit(self, project_id: str, alias: str, uid: str, body: dict[str, Any],
                   token: str | None) -> dict[str, Any]:
        """Accepts the official client's `{update: {$set: {...}}}` and the flat `{email, name, pass}`."""
        project, id_field = self._project(project_id, alias)
        fields = body.get("update", {}).get("$set") if isinstance(body.get("update"), dict) else body
        if not isinstance(fields, dict):
            raise BadRequest("send {update: {$set: {email?, name?, pass?}}} or {email?, name?, pass?}")
        changes: dict[str, Any] = {}
        for key in ("email", "name", "pass"):
            if key in fields and fields[key] not in (None, ""):
                if not isinstance(fields[key], str):
                    raise BadRequest(f"`{key}` must be a string")
                changes[key] = fields[key]
        unknown = set(fields) - {"email", "name", "pass", id_field}
        if unknown:
            raise BadRequest(f"only email, name and pass can be edited (got {', '.join(sorted(unknown))})")
        if not changes:
            raise BadRequest("nothing to change: give email, name or pass")
        if "email" in changes:
            changes["email"] = normalise_email(changes["email"])
            try:
                other = await self._db(project, alias, "read",
                                       DbRequest(col=USERS, op="one", find={"email": changes["email"]}))
                if other.get(id_field) != uid:
                    raise Conflict("User with provided email already exists")
            except NotFound:
                pass
        db = database(project, alias)
        req = DbRequest(col=USERS, op="one", find={id_field: uid}, update={"$set": dict(changes)})
        req = await self.security.crud(project, db, USERS, "update", req, self.security.claims(project, token), token)
        if "pass" in changes and req.update is not None:
            req.update.setdefault("$set", {})["pass"] = await self.passwords.hash(changes["pass"])
        try:
            await self._db(project, alias, "update", req)
            user = await self._db(project, alias, "read", DbRequest(col=USERS, op="one", find=req.find))
        except NotFound:
            raise NotFound("User not found") from None
        return {"user": public(user)}

    # -- HTTP routes (`/v1/api/<project>/auth/<alias>/...`) ---------------------------------------

    async def http_signup(self, request: Request) -> dict[str, Any]:
        p = request.params
        return await self.signup(p["project"], p["alias"], await request.json(self.core.settings.max_body_bytes))

    async def http_signin(self, request: Request) -> dict[str, Any]:
        p = request.params
        return await self.signin(p["project"], p["alias"], await request.json(self.core.settings.max_body_bytes))

    async def http_profile(self, request: Request) -> dict[str, Any]:
        p = request.params
        return await self.profile(p["project"], p["alias"], p["uid"], request.bearer_token())

    async def http_profiles(self, request: Request) -> dict[str, Any]:
        p = request.params
        return await self.profiles(p["project"], p["alias"], request.bearer_token())

    async def http_edit(self, request: Request) -> dict[str, Any]:
        p = request.params
        body = await request.json(self.core.settings.max_body_bytes)
        return await self.edit(p["project"], p["alias"], p["uid"], body, request.bearer_token())
