"""Email users (Space Cloud §6): sign-up, sign-in, profiles, edit profile.

Profiles (id, email, name, role) live in the `users` collection, which rules govern like any other.
Password hashes live apart, in the reserved `_sc_credentials` collection (keyed by a hash of the
email, so an email is claimed atomically on every database), which no client request can name: a hash
never leaves the server, whatever the rules say. Users stored by earlier versions with `pass` inside
`users` are moved over at their next sign-in.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from gateway import tokens
from gateway.config import CREDENTIALS, USERS, ProjectConfig
from gateway.core import Core
from gateway.dbrequests import database
from gateway.http import Request
from gateway.passwords import FailedSignIns, Passwords
from gateway.security import Security
from mesh.messages import DbRequest

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
USER_NAMESPACE = uuid.UUID("0b5e9a8e-6d1c-4b7e-9a59-2f1d3c4e5a60")
CREDENTIAL_NAMESPACE = uuid.UUID("5f0c2a7e-3b8d-4c1a-9e6f-7d2b1a0c9e84")
BAD_CREDENTIALS = "Given credentials are not correct"
TAKEN = "User with provided email already exists"


def user_id(email: str) -> str:
    """Ids are derived from the normalised email, so a duplicate sign-up collides on the primary key
    (atomically, on every database and across gateways) and is a 409."""
    return uuid.uuid5(USER_NAMESPACE, email).hex


def credential_key(email: str) -> str:
    """The primary key of an email's credentials: one row per email, so claiming one is atomic."""
    return uuid.uuid5(CREDENTIAL_NAMESPACE, email).hex


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

    async def signup(self, project_id: str, alias: str, body: dict[str, Any], *, client: str = ""
                     ) -> dict[str, Any]:
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
        secret = {id_field: credential_key(email), "userId": user[id_field],
                  "hash": await self.passwords.hash(password, client=client)}
        batch = DbRequest(reqs=[{"type": "create", "col": USERS, "op": "one", "doc": user},
                                {"type": "create", "col": CREDENTIALS, "op": "one", "doc": secret}])
        try:
            await self._db(project, alias, "batch", batch)
        except Conflict:
            raise Conflict(TAKEN) from None
        return {"user": user, "token": self._token(project, user, id_field)}

    async def _credentials(self, project: ProjectConfig, alias: str, id_field: str, email: str
                           ) -> dict[str, Any] | None:
        """The email's credentials; users of earlier versions (hash inside `users`) are moved over first."""
        try:
            found: dict[str, Any] = await self._db(project, alias, "read", DbRequest(
                col=CREDENTIALS, op="one", find={id_field: credential_key(email)}))
            return found
        except NotFound:
            pass
        try:
            legacy = await self._db(project, alias, "read", DbRequest(col=USERS, op="one", find={"email": email}))
        except NotFound:
            return None
        if not isinstance(legacy, dict) or not isinstance(legacy.get("pass"), str):
            return None
        secret = {id_field: credential_key(email), "userId": legacy[id_field], "hash": legacy["pass"]}
        with contextlib.suppress(Conflict):
            await self._db(project, alias, "batch", DbRequest(reqs=[
                {"type": "create", "col": CREDENTIALS, "op": "one", "doc": secret},
                {"type": "update", "col": USERS, "op": "one", "find": {id_field: legacy[id_field]},
                 "update": {"$unset": {"pass": ""}}},
            ]))
        return secret

    async def signin(self, project_id: str, alias: str, body: dict[str, Any], *, client: str = ""
                     ) -> dict[str, Any]:
        project, id_field = self._project(project_id, alias)
        raw_email, password = _strings(body, "email", "pass")
        email = normalise_email(raw_email)
        self.failures.check(email, client)
        secret = await self._credentials(project, alias, id_field, email)
        stored = secret.get("hash") if secret else None
        ok = await self.passwords.verify(stored if isinstance(stored, str) else None, password, client=client)
        user = None
        if ok and secret is not None:
            try:
                user = await self._db(project, alias, "read",
                                      DbRequest(col=USERS, op="one", find={id_field: secret.get("userId")}))
            except NotFound:
                user = None
        if not isinstance(user, dict):
            self.failures.failed(email, client)
            if secret is None and project.auth.reveal_unknown_emails:
                raise NotFound("User not found")
            raise Unauthorized(BAD_CREDENTIALS)
        self.failures.succeeded(email, client)
        if user.get("disabled") is True:  # told only to whoever knows the password
            raise Forbidden("this account is disabled")
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
        db = database(project, alias)
        req = DbRequest(col=USERS, op="one", find={id_field: uid}, update={"$set": dict(changes)})
        req = await self.security.crud(project, db, USERS, "update", req, self.security.claims(project, token), token,
                                       profile_edit=True)
        try:
            current = await self._db(project, alias, "read", DbRequest(col=USERS, op="one", find=req.find))
        except NotFound:
            raise NotFound("User not found") from None
        old_email = str(current.get("email") or "")
        new_email = normalise_email(changes["email"]) if "email" in changes else old_email
        secret = await self._credentials(project, alias, id_field, old_email) if old_email else None
        profile = {k: v for k, v in changes.items() if k != "pass"}
        if "email" in profile:
            profile["email"] = new_email
        reqs: list[dict[str, Any]] = []
        if profile:
            reqs.append({"type": "update", "col": USERS, "op": "one", "find": {id_field: current[id_field]},
                         "update": {"$set": profile}})
        hashed = await self.passwords.hash(changes["pass"]) if "pass" in changes else None
        if new_email != old_email:
            stored = hashed or (secret or {}).get("hash")
            reqs.append({"type": "create", "col": CREDENTIALS, "op": "one", "doc": {
                id_field: credential_key(new_email), "userId": current[id_field], "hash": stored}})
            if secret is not None:
                reqs.append({"type": "delete", "col": CREDENTIALS, "op": "all",
                             "find": {id_field: credential_key(old_email)}})
        elif hashed is not None:
            reqs.append({"type": "update", "col": CREDENTIALS, "op": "upsert",
                         "find": {id_field: credential_key(old_email)},
                         "update": {"$set": {"hash": hashed, "userId": current[id_field]}}})
        try:
            await self._db(project, alias, "batch", DbRequest(reqs=reqs))
            user = await self._db(project, alias, "read", DbRequest(col=USERS, op="one", find={id_field: uid}))
        except Conflict:
            raise Conflict(TAKEN) from None
        except NotFound:
            raise NotFound("User not found") from None
        return {"user": public(user)}

    # -- for the admin (Mission Control; gateway/admin_users.py checks the admin first) ------------

    async def _user(self, project: ProjectConfig, alias: str, id_field: str, uid: str) -> dict[str, Any]:
        try:
            user: dict[str, Any] = await self._db(project, alias, "read",
                                                  DbRequest(col=USERS, op="one", find={id_field: uid}))
        except NotFound:
            raise NotFound("User not found") from None
        return user

    async def set_password(self, project_id: str, alias: str, uid: str, password: str) -> None:
        """An admin's password reset: the new hash goes to `_sc_credentials` (a hash left in `users` by an
        earlier version is removed)."""
        project, id_field = self._project(project_id, alias)
        if not password:
            raise BadRequest("`pass` must not be empty")
        user = await self._user(project, alias, id_field, uid)
        email = user.get("email")
        if not isinstance(email, str) or not email:
            raise BadRequest("this user has no email, so no password to reset")
        reqs: list[dict[str, Any]] = [{
            "type": "update", "col": CREDENTIALS, "op": "upsert", "find": {id_field: credential_key(email)},
            "update": {"$set": {"hash": await self.passwords.hash(password), "userId": user[id_field]}}}]
        if "pass" in user:
            reqs.append({"type": "update", "col": USERS, "op": "one", "find": {id_field: user[id_field]},
                         "update": {"$unset": {"pass": ""}}})
        await self._db(project, alias, "batch", DbRequest(reqs=reqs))

    async def delete(self, project_id: str, alias: str, uid: str) -> dict[str, Any]:
        """An admin's deletion of a user: the profile and its credentials, in one batch. Returns the profile."""
        project, id_field = self._project(project_id, alias)
        user = await self._user(project, alias, id_field, uid)
        reqs: list[dict[str, Any]] = [{"type": "delete", "col": USERS, "op": "all", "find": {id_field: user[id_field]}}]
        email = user.get("email")
        if isinstance(email, str) and email:
            reqs.append({"type": "delete", "col": CREDENTIALS, "op": "all", "find": {id_field: credential_key(email)}})
        await self._db(project, alias, "batch", DbRequest(reqs=reqs))
        return public(user)

    # -- HTTP routes (`/v1/api/<project>/auth/<alias>/...`) ---------------------------------------

    async def http_signup(self, request: Request) -> dict[str, Any]:
        p = request.params
        body = await request.json(self.core.settings.max_body_bytes)
        return await self.signup(p["project"], p["alias"], body, client=request.client)

    async def http_signin(self, request: Request) -> dict[str, Any]:
        p = request.params
        body = await request.json(self.core.settings.max_body_bytes)
        return await self.signin(p["project"], p["alias"], body, client=request.client)

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
