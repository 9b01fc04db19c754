"""`API(project, url)`: the entry point of the app client, one per project and server."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from .db import DB
from .http import DEFAULT_TIMEOUT, Http, segment
from .live import Realtime
from .socket import Socket
from .subscription import DEFAULT_MAX_PENDING

DEFAULT_URL = "http://localhost:4122"
DEFAULT_CALL_TIMEOUT = 5.0


class API:
    """The server's HTTP and WebSocket API for one project.

        async with API("todo-app", "http://localhost:4122") as api:
            db = api.db("sqlite")
            me = await db.sign_in("ada@example.com", "secret")
            api.set_token(me.token)
            todos = await db.get("todos").where(cond("userId", "==", me.user_id))

    The WebSocket opens on the first live query and reopens by itself after any close.
    `timeout` bounds every HTTP request and WebSocket request (seconds); `reconnect_min` /
    `reconnect_max` bound the delay between reconnect attempts; `max_pending` is how many
    snapshots a live query holds for a slow consumer. `http` may be your own `httpx.AsyncClient`
    (it is not closed by `aclose()`).
    """

    def __init__(self, project: str, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT,
                 reconnect_min: float = 0.5, reconnect_max: float = 10.0,
                 max_pending: int = DEFAULT_MAX_PENDING, http: httpx.AsyncClient | None = None) -> None:
        if not project:
            raise ValueError("API: the project id is required")
        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"API: url must start with http:// or https:// (got {url!r})")
        self.project = project
        self.url = base
        self.timeout = timeout
        self._max_pending = max_pending
        self._http = Http(base, project, timeout=timeout, client=http)
        ws_url = "ws" + base[4:] + f"/v1/api/{segment(project)}/socket/json"
        self._socket = Socket(ws_url, lambda: self._http.token, request_timeout=timeout,
                              reconnect_min=reconnect_min, reconnect_max=reconnect_max)
        self._realtime = Realtime(self._socket, project)

    def __repr__(self) -> str:
        return f"API({self.project!r}, {self.url!r})"

    @property
    def token(self) -> str | None:
        return self._http.token

    def set_token(self, token: str | None) -> None:
        """The user's JWT: sent as `Authorization: Bearer` and in every WebSocket message. Live queries
        already running keep going; their next re-subscribe uses the new token."""
        self._http.token = token or None

    def db(self, alias: str) -> DB:
        """A database by its config alias (the `<alias>` in `/crud/<alias>/...`)."""
        return DB(self._http, self._realtime, alias, timeout=self.timeout, max_pending=self._max_pending)

    def mongo(self) -> DB:
        """The alias `mongo` (as space-api's `api.Mongo()`)."""
        return self.db("mongo")

    def postgres(self) -> DB:
        """The alias `sql-postgres`."""
        return self.db("sql-postgres")

    def my_sql(self) -> DB:
        """The alias `sql-mysql`."""
        return self.db("sql-mysql")

    async def call(self, service: str, func: str, params: Any = None, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Call a function of a service through the mesh; its result. `timeout` in seconds (the server caps
        it at 60). Raises the function's error (500, or the status it chose), `ServiceUnavailable` when no
        instance runs, `Timeout` when none answered in time."""
        if timeout <= 0:
            raise ValueError("call: timeout must be positive")
        path = f"/functions/{segment(service)}/{segment(func)}"
        body = {"params": params, "timeout": max(1, round(timeout * 1000))}
        answer = await self._http.request("POST", path, body, timeout=timeout + self.timeout)
        return answer.get("result") if isinstance(answer, dict) else None

    def on_connection_change(self, hook: Callable[[bool], None]) -> Callable[[], None]:
        """`hook(True)` after every WebSocket (re)open, `hook(False)` after every close; returns a remover."""
        return self._socket.add_state_hook(hook)

    @property
    def reconnects(self) -> int:
        """How many times the WebSocket reopened after a close."""
        return max(0, self._socket.opens - 1)

    async def aclose(self) -> None:
        """End every live query, close the WebSocket and the HTTP client."""
        await self._realtime.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
