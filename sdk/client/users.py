"""Email users (`/v1/api/<project>/auth/<alias>/...`): sign-up, sign-in, profiles, edit profile.

Users live in the collection `users` of the database; their id is `user["id"]` on SQL databases
and `user["_id"]` on MongoDB (`AuthResult.user_id` gives either).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import SpaceCloudError

from .conditions import Doc
from .http import Http, segment


@dataclass(frozen=True)
class AuthResult:
    """What sign-up and sign-in answer: the user (never its password hash) and a token for them."""

    user: Doc
    token: str

    @property
    def user_id(self) -> str:
        return str(self.user.get("id", self.user.get("_id", "")))

    @classmethod
    def from_wire(cls, body: Any) -> AuthResult:
        if not isinstance(body, dict) or not isinstance(body.get("user"), dict):
            raise SpaceCloudError("the server's answer has no user")
        return cls(user=body["user"], token=str(body.get("token") or ""))


class Users:
    """The email user endpoints of one database alias."""

    def __init__(self, http: Http, alias: str) -> None:
        self._http = http
        self._base = f"/auth/{segment(alias)}"

    async def sign_up(self, email: str, name: str, password: str, role: str = "user") -> AuthResult:
        body = {"email": email, "name": name, "pass": password, "role": role}
        return AuthResult.from_wire(await self._http.request("POST", f"{self._base}/email/signup", body))

    async def sign_in(self, email: str, password: str) -> AuthResult:
        body = {"email": email, "pass": password}
        return AuthResult.from_wire(await self._http.request("POST", f"{self._base}/email/signin", body))

    async def profile(self, user_id: str) -> Doc:
        answer = await self._http.request("GET", f"{self._base}/profile/{segment(user_id)}")
        return dict(answer.get("user") or {})

    async def profiles(self) -> list[Doc]:
        answer = await self._http.request("GET", f"{self._base}/profiles")
        return list(answer.get("users") or [])

    async def edit_profile(self, user_id: str, *, email: str | None = None, name: str | None = None,
                           password: str | None = None) -> Doc:
        changes = {k: v for k, v in (("email", email), ("name", name), ("pass", password)) if v}
        if not changes:
            raise ValueError("edit_profile: give email, name or password")
        body = {"update": {"$set": changes}}
        answer = await self._http.request("PUT", f"{self._base}/edit_profile/{segment(user_id)}", body)
        return dict(answer.get("user") or {})
