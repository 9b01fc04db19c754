"""The app client: Space Cloud's `space-api` surface for Python, asyncio, over HTTP and WebSocket.

    from sdk.client import API, cond, and_, or_

    async with API("todo-app", "http://localhost:4122") as api:
        db = api.db("sqlite")
        me = await db.sign_in("ada@example.com", "secret")
        api.set_token(me.token)
        await db.insert("todos").doc({"text": "write docs", "userId": me.user_id})
        async with db.live_query("todos").where(cond("userId", "==", me.user_id)) as live:
            async for snap in live:
                print(snap.type, len(snap.docs))

Errors are the project's one tree, exported by `sdk` (`from sdk import Forbidden, NotFound`): a 403
raises `Forbidden`, a 404 `NotFound`, each carrying `status` and the server's `message`.
Reference: docs/python-client.md.
"""

from .api import API
from .cache import Cache, Feed
from .conditions import And, Cond, Condition, Doc, Or, Where, and_, cond, generate_find, or_
from .db import DB
from .live import LiveQuery
from .reads import Aggregate, Get
from .subscription import Snapshot, Subscription
from .users import AuthResult
from .writes import Batch, Delete, Insert, Update

__all__ = [
    "API",
    "DB",
    "Aggregate",
    "And",
    "AuthResult",
    "Batch",
    "Cache",
    "Cond",
    "Condition",
    "Delete",
    "Doc",
    "Feed",
    "Get",
    "Insert",
    "LiveQuery",
    "Or",
    "Snapshot",
    "Subscription",
    "Update",
    "Where",
    "and_",
    "cond",
    "generate_find",
    "or_",
]
