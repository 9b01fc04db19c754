"""Email users (Space Cloud §6): sign-up, sign-in, profiles, edit profile. Users live in `users`."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from common.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from gateway import tokens
from gateway.config import ProjectConfig
from gateway.crud import database
from gateway.http import parse_json_object
from gateway.passwords import FailedSignIns, Passwords
from gateway.security import authorize_crud, claims_for

if TYPE_CHECKING:
    from gateway.server import Gateway

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


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return parse_json_object(b"".join(chunks))


def _strings(body: dict[str, Any], *keys: str) -> list[str]:
    out = []
    for key in keys:
        value = body.get(key)
        if not isinstance(value, str):
            raise BadRequest(f"`{key}` must be a string")
        out.append(value)
    return out


class Users:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.passwords = Passwords()
        self.failures = FailedSignIns()

    def _project(self, project_id: str, alias: str) -> tuple[ProjectConfig, str]:
        project = self.gw.project(project_id)
        email = project.auth.get("email")
        if not isinstance(email, dict) or email.get("enabled") is False:
            raise NotFound("Email sign in feature is not enabled")
        return project, database(project, alias)

    def _token(self, project: ProjectConfig, user: dict[str, Any], id_field: str) -> str:
        claims = {"id": user[id_field], "email": user.get("email"), "role": user.get("role")}
        return tokens.issue(claims, secret=project.secret, project=project.id, ttl=project.token_ttl)

    async def signup(self, project_id: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        raw_email, name, password = _strings(body, "email", "name", "pass")
        role = body.get("role", "user")
        if not isinstance(role, str):
            raise BadRequest("`role` must be a string")
        email = normalise_email(raw_email)
        if not password:
            raise BadRequest("`pass` must not be empty")
        allowed = (project.auth.get("email") or {}).get("signupRoles", ["user"])
        if role not in allowed:
            raise Forbidden(f"role {role!r} cannot be chosen at sign-up (allowed: {', '.join(map(str, allowed))})")
        user = {id_field: user_id(email), "email": email, "name": name, "role": role}
        stored = {**user, "pass": await self.passwords.hash(password)}
        try:
            await self.gw.db_request(project.id, alias, "create", {"col": USERS, "op": "one", "doc": stored})
        except Conflict:
            raise Conflict("User with provided email already exists") from None
        return {"user": user, "token": self._token(project, user, id_field)}

    async def signin(self, project_id: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        raw_email, password = _strings(body, "email", "pass")
        email = normalise_email(raw_email)
        self.failures.check(email)
        try:
            user = await self.gw.db_request(project.id, alias, "read",
                                            {"col": USERS, "op": "one", "find": {"email": email}})
        except NotFound:
            self.failures.failed(email)
            raise NotFound("User not found") from None
        stored = user.get("pass") if isinstance(user, dict) else None
        if not isinstance(stored, str) or not await self.passwords.verify(stored, password):
            self.failures.failed(email)
            raise Unauthorized("Given credentials are not correct")
        self.failures.succeeded(email)
        return {"user": public(user), "token": self._token(project, user, id_field)}

    async def profile(self, project_id: str, alias: str, uid: str, token: str | None) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        find = {id_field: uid}
        args = {"op": "one", "auth": claims_for(project, token), "token": token, "find": find}
        await authorize_crud(self.gw, project, alias, USERS, "read", args)
        try:
            user = await self.gw.db_request(project.id, alias, "read",
                                            {"col": USERS, "op": "one", "find": args["find"]})
        except NotFound:
            raise NotFound("User not found") from None
        return {"user": public(user)}

    async def profiles(self, project_id: str, alias: str, token: str | None) -> dict[str, Any]:
        project, _ = self._project(project_id, alias)
        args: dict[str, Any] = {"op": "all", "auth": claims_for(project, token), "token": token, "find": {}}
        await authorize_crud(self.gw, project, alias, USERS, "read", args)
        users = await self.gw.db_request(project.id, alias, "read", {"col": USERS, "op": "all", "find": args["find"]})
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
                other = await self.gw.db_request(project.id, alias, "read",
                                                 {"col": USERS, "op": "one", "find": {"email": changes["email"]}})
                if other.get(id_field) != uid:
                    raise Conflict("User with provided email already exists")
            except NotFound:
                pass
        update = {"$set": dict(changes)}
        args = {"op": "one", "auth": claims_for(project, token), "token": token, "find": {id_field: uid},
                "update": update}
        await authorize_crud(self.gw, project, alias, USERS, "update", args)
        if "pass" in changes:
            update["$set"]["pass"] = await self.passwords.hash(changes["pass"])
        try:
            await self.gw.db_request(project.id, alias, "update",
                                     {"col": USERS, "op": "one", "find": args["find"], "update": update})
            user = await self.gw.db_request(project.id, alias, "read",
                                            {"col": USERS, "op": "one", "find": args["find"]})
        except NotFound:
            raise NotFound("User not found") from None
        return {"user": public(user)}


def add_routes(app: FastAPI, gw: Gateway) -> None:
    users = Users(gw)
    limit = gw.config.max_body_bytes
    base = "/v1/api/{project}/auth/{alias}"

    def bearer(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        value = value[7:] if value[:7].lower() == "bearer " else value
        return value.strip() or None

    @app.post(base + "/email/signup")
    async def signup(project: str, alias: str, request: Request) -> dict[str, Any]:
        return await users.signup(project, alias, await json_body(request, limit))

    @app.post(base + "/email/signin")
    async def signin(project: str, alias: str, request: Request) -> dict[str, Any]:
        return await users.signin(project, alias, await json_body(request, limit))

    @app.get(base + "/profile/{uid}")
    async def profile(project: str, alias: str, uid: str, request: Request) -> dict[str, Any]:
        return await users.profile(project, alias, uid, bearer(request))

    @app.get(base + "/profiles")
    async def profiles(project: str, alias: str, request: Request) -> dict[str, Any]:
        return await users.profiles(project, alias, bearer(request))

    @app.put(base + "/edit_profile/{uid}")
    @app.post(base + "/edit_profile/{uid}")
    async def edit_profile(project: str, alias: str, uid: str, request: Request) -> dict[str, Any]:
        return await users.edit(project, alias, uid, await json_body(request, limit), bearer(request))
