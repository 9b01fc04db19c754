"""One database of the project, by its config alias: the CRUD builders, live queries and email users."""

from __future__ import annotations

from typing import Any

from .conditions import Doc
from .http import Http
from .live import LiveQuery, Realtime
from .reads import Aggregate, Get
from .subscription import DEFAULT_MAX_PENDING
from .users import AuthResult, Users
from .writes import Batch, Delete, Insert, Update


class DB:
    """`api.db("sqlite")`: every builder targets `/v1/api/<project>/crud/<alias>/...`."""

    def __init__(self, http: Http, realtime: Realtime, alias: str, *, timeout: float,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._http = http
        self._rt = realtime
        self.alias = alias
        self._timeout = timeout
        self._max_pending = max_pending
        self._users = Users(http, alias)

    def __repr__(self) -> str:
        return f"DB({self.alias!r})"

    # -- reads ----------------------------------------------------------------------------------

    def get(self, col: str) -> Get[list[Doc]]:
        """Every matching document."""
        return Get(self._http, self.alias, col, "all")

    def get_one(self, col: str) -> Get[Doc]:
        """The first matching document; `NotFound` if none."""
        return Get(self._http, self.alias, col, "one")

    def count(self, col: str) -> Get[int]:
        """How many documents match."""
        return Get(self._http, self.alias, col, "count")

    def distinct(self, col: str) -> Get[list[Any]]:
        """Distinct values: finish with `.distinct("field")`."""
        return Get(self._http, self.alias, col, "distinct")

    def aggr(self, col: str) -> Aggregate[list[Doc]]:
        """A pipeline's results: `.pipe([...])`."""
        return Aggregate(self._http, self.alias, col, "all")

    def aggr_one(self, col: str) -> Aggregate[Doc]:
        """A pipeline's first result; `NotFound` if none."""
        return Aggregate(self._http, self.alias, col, "one")

    # -- writes ---------------------------------------------------------------------------------

    def insert(self, col: str) -> Insert:
        return Insert(self._http, self.alias, col)

    def update(self, col: str) -> Update:
        """Update every matching document."""
        return Update(self._http, self.alias, col, "all")

    def update_one(self, col: str) -> Update:
        """Update the first matching document; `NotFound` if none."""
        return Update(self._http, self.alias, col, "one")

    def upsert(self, col: str) -> Update:
        """Update the first matching document, or insert one built from the equalities of `where` and the update."""
        return Update(self._http, self.alias, col, "upsert")

    def delete(self, col: str) -> Delete:
        """Delete every matching document."""
        return Delete(self._http, self.alias, col, "all")

    def delete_one(self, col: str) -> Delete:
        """Delete the first matching document; `NotFound` if none."""
        return Delete(self._http, self.alias, col, "one")

    def begin_batch(self) -> Batch:
        """Inserts, updates and deletes in one transaction: `.add(builder)...`, then `await batch`."""
        return Batch(self._http, self.alias)

    # -- realtime -------------------------------------------------------------------------------

    def live_query(self, col: str) -> LiveQuery:
        """Follow a query: `async with db.live_query(col).where(...) as live: async for snap in live`."""
        return LiveQuery(self._rt, self.alias, col, timeout=self._timeout, max_pending=self._max_pending)

    # -- email users ----------------------------------------------------------------------------

    async def sign_up(self, email: str, name: str, password: str, role: str = "user") -> AuthResult:
        """A new user (`Conflict` if the email is taken). Pass `.token` to `api.set_token`."""
        return await self._users.sign_up(email, name, password, role)

    async def sign_in(self, email: str, password: str) -> AuthResult:
        """`NotFound` for an unknown email, `Unauthorized` for a wrong password."""
        return await self._users.sign_in(email, password)

    async def profile(self, user_id: str) -> Doc:
        """One user (the `users` read rule applies)."""
        return await self._users.profile(user_id)

    async def profiles(self) -> list[Doc]:
        """Every user (the `users` read rule applies)."""
        return await self._users.profiles()

    async def edit_profile(self, user_id: str, *, email: str | None = None, name: str | None = None,
                           password: str | None = None) -> Doc:
        """Change email, name and/or password; the user as it is afterwards."""
        return await self._users.edit_profile(user_id, email=email, name=name, password=password)
