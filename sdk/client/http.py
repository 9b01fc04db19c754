"""HTTP requests to the server: JSON in, JSON out, errors raised from the project's one error tree.

Every non-2xx answer `{"error": "..."}` becomes `common.errors.from_code(status, message)` (so a 403
is a `Forbidden` carrying the server's message). httpx's own failures are translated at this one
boundary: no answer in time → `Timeout` (504), server unreachable → `ServiceUnavailable` (503).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout, from_code, translated

DEFAULT_TIMEOUT = 10.0
"""Seconds an HTTP request may take (the server's own database timeout is 10 s)."""


def segment(value: str) -> str:
    """One URL path segment, percent-encoded (a `/` in a name cannot change the route)."""
    return quote(value, safe="")


def error_message(response: httpx.Response) -> str:
    """The server's message: `{"error": ...}`, else FastAPI's `{"detail": ...}`, else the text."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else orjson.dumps(value).decode()
    text = response.text.strip()
    return text[:500] if text else f"HTTP {response.status_code} {response.reason_phrase}".strip()


class Http:
    """The project's HTTP endpoint: `/v1/api/<project>/...` on `base_url`, with the user's token."""

    def __init__(self, base_url: str, project: str, *, timeout: float = DEFAULT_TIMEOUT,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.timeout = timeout
        self.token: str | None = None
        self._owned = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    def _map(self, exc: BaseException) -> SpaceCloudError | None:
        if isinstance(exc, httpx.TimeoutException):
            return Timeout(f"no answer from {self.base_url} in time ({type(exc).__name__})")
        if isinstance(exc, httpx.TransportError):
            return ServiceUnavailable(f"cannot reach the server at {self.base_url}: {exc or type(exc).__name__}")
        return None

    async def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """Send a JSON request to `path` (below `/v1/api/<project>`); the parsed JSON answer, or raise."""
        url = f"{self.base_url}/v1/api/{segment(self.project)}{path}"
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = orjson.dumps(body)
        with translated(self._map):
            response = await self._client.request(method, url, content=content, headers=headers,
                                                  timeout=timeout if timeout is not None else self.timeout)
        if not 200 <= response.status_code < 300:
            raise from_code(response.status_code, error_message(response))
        if not response.content:
            return {}
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SpaceCloudError(f"the server answered {method} {path} with a body that is not JSON") from None

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
