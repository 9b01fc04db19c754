"""Errors from the running server raise the right class of the one tree, with the server's message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import common.errors as errors
from sdk.client import API, cond

from .conftest import Server, Target, free_port, unique


async def test_http_errors_are_typed(api: API, target: Target, server: Server) -> None:
    db, i = api.db(target.alias), target.id
    col = server.guarded  # create: authenticated; read: own documents; update: deny; no delete rule

    with pytest.raises(errors.BadRequest) as bad:
        await db.get(unique()).where({"a": {"$where": "sleep(1)"}})
    assert bad.value.status == 400 and "$where" in bad.value.message
    not_a_number: Any = "ten"
    with pytest.raises(errors.BadRequest, match=r"\$inc"):
        await db.update(unique()).set({"a": 1}).inc({"n": not_a_number})

    with pytest.raises(errors.Unauthorized) as no_token:
        await db.insert(col).doc({i: unique(), "userId": "x"})
    assert no_token.value.status == 401 and "token" in no_token.value.message
    with pytest.raises(errors.Unauthorized, match="No rule"):
        await db.delete(col).where(cond(i, "==", "x"))

    me = await db.sign_up(f"err-{uuid.uuid4().hex[:8]}@example.com", "Err", "pw")
    api.set_token(me.token)
    await db.insert(col).doc({i: unique(), "userId": me.user_id})
    assert len(await db.get(col).where(cond("userId", "==", me.user_id))) == 1
    with pytest.raises(errors.Forbidden) as other:
        await db.get(col).where(cond("userId", "==", "someone-else"))
    assert other.value.status == 403 and "do not match" in other.value.message
    with pytest.raises(errors.Forbidden, match="denied"):
        await db.update(col).where(cond("userId", "==", me.user_id)).set({"a": 1})

    with pytest.raises(errors.NotFound) as none:
        await db.get_one(unique()).where(cond(i, "==", "missing"))
    assert none.value.status == 404 and none.value.message
    with pytest.raises(errors.NotFound, match="nope"):
        await api.db("nope").get("t")
    api.set_token(None)


async def test_an_unreachable_server_is_unavailable() -> None:
    async with API("p", f"http://127.0.0.1:{free_port()}", timeout=2) as api:
        with pytest.raises(errors.ServiceUnavailable, match="cannot reach"):
            await api.db("sqlite").get("t")
