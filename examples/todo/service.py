"""The todo app's service: `todo.summary`, called from the page with `api.call('todo', 'summary', {todos})`.

The page sends the todos it shows (its live query); the gateway has already checked the caller's
token (rule `authenticated`), and `auth` holds its claims. Only the caller's own todos are counted,
whatever the page sent.

Run alone: `python -m examples.todo.service` (finds the local `space-cloud run` by itself), or with
`--nats URL --project todo-app`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sdk import BadRequest, Forbidden, Mesh

mesh = Mesh("todo")

MAX_TODOS = 10_000


def _summary(todos: list[dict[str, Any]], user_id: str, email: str, now: datetime) -> dict[str, Any]:
    mine = [t for t in todos if isinstance(t, dict) and t.get("userId") == user_id]
    done = sum(1 for t in mine if t.get("done") is True)
    total = len(mine)
    open_ = total - done
    percent = round(100 * done / total) if total else 0
    if total == 0:
        message = "Nothing on your list yet. Add your first todo!"
    elif open_ == 0:
        message = f"All {total} done. Nice work!"
    else:
        message = f"{open_} to go, {done} done ({percent}%)."
    oldest_open = min((str(t.get("createdAt", "")) for t in mine if t.get("done") is not True), default=None)
    return {
        "user": email or user_id,
        "total": total,
        "done": done,
        "open": open_,
        "percent": percent,
        "oldestOpen": oldest_open,
        "message": message,
        "at": now.isoformat(timespec="seconds"),
    }


@mesh.function
async def summary(params: Any, auth: dict[str, Any] | None) -> dict[str, Any]:
    """`{todos: [...]}` → counts and a one-line message for the signed-in user."""
    if not auth or not isinstance(auth.get("id"), str):
        raise Forbidden("sign in first")
    todos = params.get("todos") if isinstance(params, dict) else None
    if not isinstance(todos, list) or len(todos) > MAX_TODOS:
        raise BadRequest(f"params.todos must be a list of at most {MAX_TODOS} todos")
    return _summary(todos, auth["id"], str(auth.get("email") or ""), datetime.now(UTC))


if __name__ == "__main__":
    mesh.run()
