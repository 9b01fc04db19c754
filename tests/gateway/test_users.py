"""Email sign-up / sign-in / profiles against every database, with Space Cloud's bodies and codes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from common.errors import TooManyAttempts
from gateway.passwords import FailedSignIns
from tests.support.servers import SECRET
from tests.support.stack import Stack, database_params, stack

USERS_RULES = {
    "read": {"rule": "authenticated"},
    "update": {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.find.id"},
}


@pytest.fixture(params=database_params())
async def st(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Stack]:
    rules = dict(USERS_RULES)
    if request.param == "mongo":
        rules["update"] = {**rules["update"], "f2": "args.find._id"}
    async with stack(request.param, tmp_path, nats_url, collections={"users": {"rules": rules}},
                     auth={"email": {"enabled": True}, "tokenTTL": 120}) as s:
        yield s


def email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@Example.com"


def auth_url(st: Stack, path: str) -> str:
    return f"/v1/api/{st.project}/auth/{st.alias}/{path}"


async def test_signup_signin_profile_edit(st: Stack) -> None:
    addr = email()
    r = await st.http.post(auth_url(st, "email/signup"), json={"email": addr, "name": "Ann", "pass": "s3cret!",
                                                              "role": "user"})
    assert r.status_code == 200, r.text
    body = r.json()
    user = body["user"]
    assert user["email"] == addr.lower() and user["name"] == "Ann" and user["role"] == "user"
    assert "pass" not in user and st.id in user
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert (claims["id"], claims["email"], claims["role"]) == (user[st.id], addr.lower(), "user")
    assert claims["exp"] - claims["iat"] == 120 and claims["project"] == st.project

    r = await st.http.post(auth_url(st, "email/signup"), json={"email": addr.upper(), "name": "B", "pass": "x",
                                                              "role": "user"})
    assert r.status_code == 409 and r.json() == {"error": "User with provided email already exists"}

    r = await st.http.post(auth_url(st, "email/signin"), json={"email": addr, "pass": "wrong"})
    assert r.status_code == 401 and r.json() == {"error": "Given credentials are not correct"}
    r = await st.http.post(auth_url(st, "email/signin"), json={"email": "nobody@example.com", "pass": "x"})
    assert r.status_code == 401 and r.json() == {"error": "Given credentials are not correct"}  # no enumeration
    r = await st.http.post(auth_url(st, "email/signin"), json={"email": addr, "pass": "s3cret!"})
    assert r.status_code == 200
    token = r.json()["token"]
    assert "pass" not in r.json()["user"]
    headers = {"Authorization": f"Bearer {token}"}

    uid = user[st.id]
    assert (await st.http.get(auth_url(st, f"profile/{uid}"))).status_code == 401
    r = await st.http.get(auth_url(st, f"profile/{uid}"), headers=headers)
    assert r.status_code == 200 and r.json()["user"]["name"] == "Ann" and "pass" not in r.json()["user"]
    r = await st.http.get(auth_url(st, "profiles"), headers=headers)
    assert r.status_code == 200 and all("pass" not in u for u in r.json()["users"])
    assert (await st.http.get(auth_url(st, "profile/nope"), headers=headers)).status_code == 404

    # the official client's PUT shape
    r = await st.http.put(auth_url(st, f"edit_profile/{uid}"), headers=headers,
                          json={"update": {"$set": {"name": "Anne", "pass": "n3w-pass"}}})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["name"] == "Anne" and "pass" not in r.json()["user"]
    r = await st.http.post(auth_url(st, "email/signin"), json={"email": addr, "pass": "n3w-pass"})
    assert r.status_code == 200
    # someone else's profile: the update rule says no
    other = (await st.http.post(auth_url(st, "email/signup"), json={"email": email(), "name": "O", "pass": "p",
                                                                   "role": "user"})).json()["user"][st.id]
    r = await st.http.put(auth_url(st, f"edit_profile/{other}"), headers=headers, json={"name": "pwned"})
    assert r.status_code == 403
    # role cannot be edited, nor chosen freely at sign-up
    r = await st.http.put(auth_url(st, f"edit_profile/{uid}"), headers=headers, json={"role": "admin"})
    assert r.status_code == 400
    r = await st.http.post(auth_url(st, "email/signup"), json={"email": email(), "name": "M", "pass": "p",
                                                              "role": "admin"})
    assert r.status_code == 403


@pytest.mark.parametrize("body", [
    {"email": "not-an-email", "name": "x", "pass": "y", "role": "user"},
    {"email": "a@b.c", "name": 5, "pass": "y", "role": "user"},
    {"email": "a@b.c", "name": "x", "pass": ["y"], "role": "user"},
    {"email": "a@b.c", "name": "x", "pass": "", "role": "user"},
])
async def test_signup_bad_input_is_400(st: Stack, body: dict[str, object]) -> None:
    r = await st.http.post(auth_url(st, "email/signup"), json=body)
    assert r.status_code == 400 and r.json()["error"]


async def test_email_auth_disabled_is_404(tmp_path: Path, nats_url: str) -> None:
    async with stack("sqlite", tmp_path, nats_url) as st:
        r = await st.http.post(auth_url(st, "email/signin"), json={"email": "a@b.c", "pass": "x"})
        assert r.status_code == 404 and r.json() == {"error": "Email sign in feature is not enabled"}


async def test_repeated_failures_are_slowed_down(tmp_path: Path, nats_url: str) -> None:
    async with stack("sqlite", tmp_path, nats_url, auth={"email": {"enabled": True}}) as st:
        addr = email()
        await st.http.post(auth_url(st, "email/signup"), json={"email": addr, "name": "n", "pass": "right",
                                                              "role": "user"})
        codes = [(await st.http.post(auth_url(st, "email/signin"), json={"email": addr, "pass": "bad"})).status_code
                 for _ in range(5)]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:]
        r = await st.http.post(auth_url(st, "email/signin"), json={"email": addr, "pass": "right"})
        assert r.status_code == 429 and "retry" in r.json()["error"]


async def test_unknown_emails_are_revealed_only_when_asked(tmp_path: Path, nats_url: str) -> None:
    auth = {"email": {"enabled": True, "revealUnknownEmails": True}}
    async with stack("sqlite", tmp_path, nats_url, auth=auth) as st:
        r = await st.http.post(auth_url(st, "email/signin"), json={"email": "nobody@example.com", "pass": "x"})
        assert r.status_code == 404 and r.json() == {"error": "User not found"}


def test_backoff_grows_and_clears() -> None:
    f = FailedSignIns(free=2, max_wait=100)
    f.check("a")
    f.failed("a")
    f.failed("a")
    with pytest.raises(TooManyAttempts):
        f.check("a")
    f.succeeded("a")
    f.check("a")
