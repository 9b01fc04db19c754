"""The todo app from Python: sign up or in, add and list todos, follow them live, ask `todo.summary`.

Start the app first (`python -m examples.todo`, the server and its service), then:

    python -m examples.todo.client --email ada@example.com --password secret --add "buy milk"

Everything goes through the app client (`sdk.client`): the same HTTP and WebSocket API, and the
same rules, as the page at http://localhost:4122/.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from sdk import Conflict, NotFound, ServiceUnavailable, SpaceCloudError, Unauthorized
from sdk.client import API, DB, Subscription, cond


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.todo.client", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://localhost:4122", help="the server (default http://localhost:4122)")
    p.add_argument("--project", default="todo-app", help="project id (default todo-app)")
    p.add_argument("--db", default="db", help="database alias (default db, as in the example's config)")
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--name", default="", help="name for a new account (default: the email's user part)")
    p.add_argument("--add", action="append", default=[], metavar="TEXT", help="add a todo (repeatable)")
    p.add_argument("--follow", type=float, default=3.0, metavar="SECONDS",
                   help="follow the live query this long, ticking off the oldest open todo (default 3; 0: skip)")
    return p


async def sign_in_or_up(db: DB, email: str, password: str, name: str) -> tuple[str, str, str]:
    """(user id, token, id field of this database); signs up when the email has no account yet."""
    try:
        me = await db.sign_in(email, password)
        print(f"signed in as {me.user['email']}")
    except (NotFound, Unauthorized) as refused:  # the server may not say whether the email is known
        try:
            me = await db.sign_up(email, name or email.split("@")[0], password)
        except Conflict:
            raise refused from None  # the account exists: the password was wrong
        print(f"signed up as {me.user['email']}")
    return me.user_id, me.token, "_id" if "_id" in me.user else "id"


def line(todo: dict[str, Any]) -> str:
    return f"  [{'x' if todo.get('done') else ' '}] {todo.get('text', '')}"


async def follow(db: DB, live: Subscription, me: str, id_field: str, seconds: float) -> None:
    """Print every change for `seconds`, after ticking off the oldest open todo (so there is one)."""
    async def tick() -> None:
        open_ = sorted((t for t in live.snapshot if not t.get("done")), key=lambda t: str(t.get("createdAt")))
        if open_:
            todo = open_[0]
            # the rules want the owner in the find: only my todos can be changed
            await db.update("todos").where(cond(id_field, "==", todo[id_field]), cond("userId", "==", me)) \
                .set({"done": True})

    print(f"following my todos for {seconds:g} s:")
    ticker = asyncio.create_task(tick())
    try:
        async with asyncio.timeout(seconds):
            async for snap in live:
                changed = snap.changed or {}
                print(f"  live: {snap.type} {changed.get('text', '')!r} ({len(snap.docs)} todos)")
    except TimeoutError:
        pass
    await ticker


async def main(args: argparse.Namespace) -> int:
    async with API(args.project, args.url) as api:
        db = api.db(args.db)
        me, token, id_field = await sign_in_or_up(db, args.email, args.password, args.name)
        api.set_token(token)

        for text in args.add:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            todo = {id_field: uuid.uuid4().hex, "userId": me, "text": text, "done": False, "createdAt": now}
            await db.insert("todos").doc(todo)
            print(f"added {text!r}")

        todos = await db.get("todos").where(cond("userId", "==", me)).sort("createdAt")
        print(f"my todos ({len(todos)}):")
        for todo in todos:
            print(line(todo))

        async with db.live_query("todos").where(cond("userId", "==", me)) as live:
            first = await anext(live)
            print(f"live query: {len(first.docs)} todos to start with")
            if args.follow > 0:
                await follow(db, live, me, id_field, args.follow)
            todos = live.snapshot

        try:
            summary = await api.call("todo", "summary", {"todos": todos}, timeout=5)
        except ServiceUnavailable:
            print("todo.summary: the service is not running (start the app with `python -m examples.todo`)")
            return 0
        print(f"summary: {summary['message']} ({summary['done']}/{summary['total']} done)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(_parser().parse_args())))
    except SpaceCloudError as exc:
        print(f"error {exc.status}: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
