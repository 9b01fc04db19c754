"""`api.call` against the running server and a Python service (`sdk.Mesh`, in this process)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import common.errors as errors
from sdk import Mesh
from sdk.client import API

from .conftest import Server, running_service


@pytest.fixture
async def service(server: Server, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Mesh]:
    """Service `pysvc`; it finds the server's embedded NATS by itself (SPACE_CLOUD_HOME)."""
    for key, value in server.nats_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
    mesh = Mesh("pysvc", project=server.project)

    @mesh.function
    async def echo(params: Any, auth: Any) -> Any:
        return {"params": params, "auth": auth}

    @mesh.function
    async def whoami(params: Any, auth: dict[str, Any] | None) -> Any:
        return auth

    @mesh.function
    async def fail(params: Any, auth: Any) -> Any:
        if params == "conflict":
            raise errors.Conflict("already there")
        raise RuntimeError("the function broke")

    @mesh.function
    async def slow(params: dict[str, Any], auth: Any) -> Any:
        await asyncio.sleep(float(params["seconds"]))
        return "late"

    @mesh.function
    async def secret(params: Any, auth: Any) -> Any:
        return "never"

    async with running_service(mesh):
        yield mesh


async def test_call_a_python_service(api: API, service: Mesh) -> None:
    params = {"text": "hi", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    assert await api.call("pysvc", "echo", params) == {"params": params, "auth": None}
    assert await api.call("pysvc", "echo") == {"params": None, "auth": None}

    db = api.db("sqlite")
    me = await db.sign_up(f"fn-{uuid.uuid4().hex[:8]}@example.com", "Fn", "pw")
    with pytest.raises(errors.Unauthorized):
        await api.call("pysvc", "whoami", {})
    api.set_token(me.token)
    claims = await api.call("pysvc", "whoami", {}, timeout=3)
    assert claims["id"] == me.user_id and claims["email"] == me.user["email"] and claims["role"] == "user"
    assert (await api.call("pysvc", "echo", 1))["auth"]["id"] == me.user_id


async def test_call_errors(api: API, service: Mesh) -> None:
    with pytest.raises(errors.InternalError) as broke:
        await api.call("pysvc", "fail", None)
    assert broke.value.status == 500 and broke.value.message == "the function broke"
    with pytest.raises(errors.Conflict, match="already there"):
        await api.call("pysvc", "fail", "conflict")
    with pytest.raises(errors.Unauthorized, match="token"):  # rule deny: anonymous callers are told to sign in
        await api.call("pysvc", "secret", {})
    me = await api.db("sqlite").sign_up(f"deny-{uuid.uuid4().hex[:8]}@example.com", "D", "pw")
    api.set_token(me.token)
    with pytest.raises(errors.Forbidden):
        await api.call("pysvc", "secret", {})
    api.set_token(None)
    with pytest.raises(errors.Timeout):
        await api.call("pysvc", "slow", {"seconds": 3}, timeout=0.3)
    with pytest.raises(errors.ServiceUnavailable):
        await api.call("ghost", "anything", {})
    with pytest.raises(errors.Forbidden):
        await api.call("unlisted", "fn", {})
    with pytest.raises(ValueError, match="timeout"):
        await api.call("pysvc", "echo", {}, timeout=0)
    assert await api.call("pysvc", "slow", {"seconds": 0.2}, timeout=5) == "late"
