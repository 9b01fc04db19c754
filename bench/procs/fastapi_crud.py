"""The CRUD peer: a hand-written FastAPI + asyncpg service running the same queries on the same table.

    python bench/procs/fastapi_crud.py --port P --dsn postgresql://postgres@127.0.0.1:5432/test --table T

POST /read_one {"id"} → {"result": row};  POST /read_many {"grp"} → {"result": [20 rows]};
POST /insert {"doc": {...}} → {}.  uvicorn with uvloop + httptools, no access log; asyncpg pool of 10
(the size the Space Cloud worker uses).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import ORJSONResponse


def build(dsn: str, table: str) -> FastAPI:
    pool: Any = None
    t = '"' + table.replace('"', "") + '"'
    q_one = f'SELECT "id", "grp", "name", "score" FROM {t} WHERE "id" = $1 LIMIT 1'  # noqa: S608 (our own table name, quoted)
    q_many = f'SELECT "id", "grp", "name", "score" FROM {t} WHERE "grp" = $1 LIMIT 20'  # noqa: S608
    q_insert = f'INSERT INTO {t} ("id", "grp", "name", "score", "_v") VALUES ($1, $2, $3, $4, 1)'  # noqa: S608

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan, default_response_class=ORJSONResponse)

    @app.post("/read_one")
    async def read_one(body: dict[str, Any] = Body(...)) -> ORJSONResponse:  # noqa: B008
        row = await pool.fetchrow(q_one, body["id"])
        if row is None:
            return ORJSONResponse({"error": "not found"}, status_code=404)
        return ORJSONResponse({"result": dict(row)})

    @app.post("/read_many")
    async def read_many(body: dict[str, Any] = Body(...)) -> ORJSONResponse:  # noqa: B008
        rows = await pool.fetch(q_many, body["grp"])
        return ORJSONResponse({"result": [dict(r) for r in rows]})

    @app.post("/insert")
    async def insert(body: dict[str, Any] = Body(...)) -> ORJSONResponse:  # noqa: B008
        d = body["doc"]
        await pool.execute(q_insert, d["id"], d["grp"], d["name"], d["score"])
        return ORJSONResponse({})

    return app


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--table", required=True)
    a = p.parse_args()
    uvicorn.run(build(a.dsn, a.table), host="127.0.0.1", port=a.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")
