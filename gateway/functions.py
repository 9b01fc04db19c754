"""`POST /v1/api/<project>/functions/<service>/<func>`: a function call from a frontend.

Body `{"params": ..., "timeout": <ms>}` exactly as the official client's `api.call()` sends it;
answer `200 {"result": ...}`. The timeout is read as milliseconds (Space Cloud read seconds, a bug).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from common.errors import BadRequest, NotFound
from gateway.http import Receive, Scope, Send, bearer_token, parse_json_object, read_body, send_json
from gateway.security import authorize_function, claims_for
from mesh import subjects

if TYPE_CHECKING:
    from gateway.server import Gateway

DEFAULT_TIMEOUT_MS = 5000


def call_timeout(body: dict[str, Any], ceiling: float) -> float:
    """Seconds to wait: `timeout` in ms (default 5000), capped by the configured ceiling."""
    raw = body.get("timeout", DEFAULT_TIMEOUT_MS)
    if raw is None:
        raw = DEFAULT_TIMEOUT_MS
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise BadRequest("`timeout` must be a positive number of milliseconds")
    return float(min(raw / 1000.0, ceiling))


async def handle_call(
    gw: Gateway, scope: Scope, receive: Receive, send: Send, project_id: str, service: str, func: str
) -> None:
    project = gw.project(project_id)
    if not project.functions_enabled:
        raise NotFound("the functions module is not enabled for this project")
    subjects.check_name("service", service)
    subjects.check_name("function", func)
    body = parse_json_object(await read_body(scope, receive, gw.config.max_body_bytes))
    timeout = call_timeout(body, gw.config.max_function_timeout)
    token = bearer_token(scope)
    claims = claims_for(project, token)
    args: dict[str, Any] = {"auth": claims, "token": token, "params": body.get("params")}
    await authorize_function(gw, project, service, func, args)
    result = await gw.call_function(project.id, service, func, args.get("params"), claims, timeout=timeout)
    await send_json(send, 200, orjson.dumps({"result": result}))
