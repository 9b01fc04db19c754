"""Email users through the client on every database: sign-up, sign-in, profiles, edit, and their errors."""

from __future__ import annotations

import uuid

import pytest

import common.errors as errors
from sdk.client import API

from .conftest import Target


async def test_sign_up_sign_in_profile_edit(api: API, target: Target) -> None:
    db = api.db(target.alias)
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    up = await db.sign_up(email, "Ada", "first-pass", role="editor")
    assert up.user[target.id] == up.user_id and up.user_id
    assert up.user["email"] == email and up.user["name"] == "Ada" and up.user["role"] == "editor"
    assert "pass" not in up.user and up.token.count(".") == 2

    with pytest.raises(errors.Conflict) as dup:
        await db.sign_up(email.upper(), "Ada again", "x")
    assert dup.value.message == "User with provided email already exists"
    with pytest.raises(errors.NotFound) as unknown:
        await db.sign_in(f"nobody-{uuid.uuid4().hex[:8]}@example.com", "x")
    assert unknown.value.message == "User not found"
    with pytest.raises(errors.Unauthorized) as wrong:
        await db.sign_in(email, "not-the-pass")
    assert wrong.value.message == "Given credentials are not correct"
    with pytest.raises(errors.Forbidden, match="cannot be chosen at sign-up"):
        await db.sign_up(f"boss-{uuid.uuid4().hex[:8]}@example.com", "Boss", "x", role="admin")
    with pytest.raises(errors.BadRequest, match="email"):
        await db.sign_up("not an email", "X", "x")

    # profiles need a token (rule `authenticated` on users)
    with pytest.raises(errors.Unauthorized):
        await db.profile(up.user_id)
    me = await db.sign_in(email, "first-pass")
    assert me.user_id == up.user_id and me.user["email"] == email and "pass" not in me.user
    api.set_token(me.token)
    assert await db.profile(me.user_id) == up.user
    everyone = await db.profiles()
    assert me.user_id in [u[target.id] for u in everyone]
    assert all("pass" not in u for u in everyone)
    with pytest.raises(errors.NotFound, match="User not found"):
        await db.profile("no-such-user")

    edited = await db.edit_profile(me.user_id, name="Ada L.", password="second-pass")
    assert edited["name"] == "Ada L." and edited["email"] == email and "pass" not in edited
    with pytest.raises(errors.Unauthorized):
        await db.sign_in(email, "first-pass")
    again = await db.sign_in(email, "second-pass")
    assert again.user["name"] == "Ada L."

    api.set_token("not.a.jwt")
    with pytest.raises(errors.Unauthorized):
        await db.profiles()
    api.set_token(None)
