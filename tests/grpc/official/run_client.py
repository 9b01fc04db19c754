# mypy: ignore-errors
"""Space Cloud's official Python client (`space-api-py` 0.9.1, gRPC), unchanged, against this server.

Run by tests/grpc/test_official_client.py with the python of a virtualenv that has only that client
(it needs protobuf 3.20, which the project's environment cannot have):

    python run_client.py '{"target": "127.0.0.1:4124", "http": "http://127.0.0.1:4122", "project": ...}'

Prints one line per check and exits 0 when every check passed; any failure is a traceback and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import urllib.request
import uuid

from space_api import AND, API, COND
from space_api.sql.sql import SQL


def check(name, ok, detail=""):
    print(json.dumps({"check": name, "ok": bool(ok), "detail": str(detail)[:300]}), flush=True)
    if not ok:
        raise AssertionError(f"{name}: {detail}")


def until(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def database(api, alias, project):
    """The client's own db object for the alias: mongo(), postgres(), my_sql(), or its SQL class for others."""
    if alias == "mongo":
        return api.mongo()
    if alias == "sql-postgres":
        return api.postgres()
    if alias == "sql-mysql":
        return api.my_sql()
    return SQL(project, api.stub, alias, api.token)


def http_call(base, project, service, func, params, token):
    body = json.dumps({"params": params, "timeout": 5000}).encode()
    url = f"{base}/v1/api/{project}/functions/{service}/{func}"  # the test's own http:// server
    req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main(cfg):
    project, alias, idf = cfg["project"], cfg["alias"], cfg["id"]
    items, live_col = cfg["items"], cfg["live"]
    api = API(project, cfg["target"])
    db = database(api, alias, project)

    # -- sign-up / sign-in ------------------------------------------------------------------------
    email = f"official-{uuid.uuid4().hex[:8]}@example.com"
    r = db.sign_up(email, "Official", "pa55word", "user")
    check("sign_up", r.status == 200 and r.result["user"]["email"] == email and r.result["token"], r)
    uid = r.result["user"][idf]
    r = db.sign_up(email, "Again", "other", "user")
    check("sign_up twice is 409", r.status == 409 and r.error, r)
    r = db.sign_in(email, "wrong")
    check("sign_in with a wrong password is 401", r.status == 401, r)
    r = db.sign_in(email, "pa55word")
    check("sign_in", r.status == 200 and r.result["user"][idf] == uid, r)
    api.set_token(r.result["token"])
    db = database(api, alias, project)  # the client's db objects keep the token they were made with
    r = db.profile(uid)
    check("profile", r.status == 200 and r.result["user"]["email"] == email, r)

    # -- CRUD with conditions (the collection's rules let a user read only their own documents) --
    docs = [{idf: f"d{n}", "userId": uid, "n": n, "tag": "odd" if n % 2 else "even"} for n in range(1, 6)]
    r = db.insert(items).docs(docs).apply()
    check("insert docs", r.status == 200, r)
    r = db.insert(items).doc({idf: "other", "userId": "someone-else", "n": 99}).apply()
    check("insert for someone else is refused", r.status == 403, r)
    r = db.get(items).where(AND(COND("userId", "==", uid), COND("n", ">", 1), COND("n", "<=", 4))) \
        .sort("-n").skip(1).limit(2).apply()
    check("get with conditions, sort, skip, limit", r.status == 200 and [d["n"] for d in r.result] == [3, 2], r)
    r = db.get(items).where(COND("userId", "==", uid), COND("tag", "in", ["odd"])).apply()
    check("get with in", r.status == 200 and sorted(d["n"] for d in r.result) == [1, 3, 5], r)
    r = db.get(items).where(COND("userId", "==", "someone-else")).apply()
    check("reading someone else's documents is refused", r.status == 403, r)
    r = db.get_one(items).where(COND("userId", "==", uid), COND(idf, "==", "d2")).apply()
    check("get_one", r.status == 200 and r.result["n"] == 2, r)
    r = db.update(items).where(COND("userId", "==", uid), COND("tag", "==", "even")).set({"tag": "EVEN"}).apply()
    check("update with conditions", r.status == 200, r)
    r = db.get(items).where(COND("userId", "==", uid), COND("tag", "==", "EVEN")).apply()
    check("the update is there", sorted(d["n"] for d in r.result) == [2, 4], r)
    r = db.delete(items).where(COND("userId", "==", uid), COND("n", ">=", 5)).apply()
    check("delete with conditions", r.status == 200, r)
    if alias == "mongo":
        r = db.update(items).where(COND("userId", "==", uid), COND(idf, "==", "d1")).inc({"n": 10}).apply()
        check("mongo: inc", r.status == 200, r)
        r = db.count(items).where(COND("userId", "==", uid)).apply()
        check("mongo: count", r.status == 200 and r.result == 4, r)

    # -- batch -------------------------------------------------------------------------------------
    b = db.begin_batch()
    b.add(db.insert(items).doc({idf: "b1", "userId": uid, "n": 7, "tag": "batch"}))
    b.add(db.update(items).where(COND("userId", "==", uid), COND(idf, "==", "d2")).set({"tag": "batched"}))
    b.add(db.delete(items).where(COND("userId", "==", uid), COND(idf, "==", "d3")))
    r = b.apply()
    check("batch", r.status == 200, r)
    r = db.get(items).where(COND("userId", "==", uid)).sort(idf).apply()
    check("the batch is there", [(d[idf], d["tag"]) for d in r.result if d[idf] in ("b1", "d2", "d3")]
          == [("b1", "batch"), ("d2", "batched")], r)

    # -- a live query receiving insert, update and delete ------------------------------------------
    snapshots, errors = [], []
    lock = threading.Lock()

    def on_snapshot(rows, kind):
        with lock:
            snapshots.append((kind, {d[idf]: d for d in rows}))

    def last():
        with lock:
            return snapshots[-1] if snapshots else (None, {})

    sub = db.live_query(live_col).where(COND("userId", "==", uid)).subscribe(on_snapshot, errors.append)
    time.sleep(0.5)  # the subscription is asynchronous in this client; its ack carries no change
    check("live query subscribed", not errors, errors)
    r = db.insert(live_col).doc({idf: "l1", "userId": uid, "v": 1}).apply()
    check("live: insert", r.status == 200 and until(lambda: last()[0] == "insert" and "l1" in last()[1]), last())
    r = db.update(live_col).where(COND("userId", "==", uid), COND(idf, "==", "l1")).set({"v": 2}).apply()
    check("live: update", r.status == 200 and until(lambda: last()[0] == "update" and last()[1]["l1"]["v"] == 2),
          last())
    r = db.insert(live_col).doc({idf: "l2", "userId": uid, "v": 1}).apply()
    check("live: second insert", until(lambda: set(last()[1]) == {"l1", "l2"}), last())
    r = db.delete(live_col).where(COND("userId", "==", uid), COND(idf, "==", "l1")).apply()
    check("live: delete", r.status == 200 and until(lambda: last()[0] == "delete" and set(last()[1]) == {"l2"}),
          last())
    sub()

    # -- a call to a Python service (sdk.Mesh); the client sends the timeout in seconds ------------
    r = api.call(cfg["python_service"], "add", {"a": 2, "b": 40})
    check("call a Python service", r.status == 200 and r.result == {"sum": 42, "caller": uid}, r)
    r = api.call(cfg["python_service"], "nope", {})
    check("call an unknown function", r.status in (403, 500, 503) and r.error, r)

    # -- a service registered over the Service stream, called over HTTP ----------------------------
    name = cfg["stream_service"]
    service = api.service(name)

    def echo(params, auth, cb):
        cb("response", {"echo": params, "user": (auth or {}).get("id")})

    service.register_func("echo", echo)
    threading.Thread(target=service.start, daemon=True).start()
    token = api.token
    ok = until(lambda: http_call(cfg["http"], project, name, "echo", {"x": 1}, token)[0] == 200)
    status, body = http_call(cfg["http"], project, name, "echo", {"x": 1}, token)
    check("a service on the Service stream answers over HTTP", ok and body == {"result": {"echo": {"x": 1},
                                                                                        "user": uid}},
          (status, body))
    r = api.call(name, "echo", "hi")
    check("and over gRPC", r.status == 200 and r.result == {"echo": "hi", "user": uid}, r)
    status, body = http_call(cfg["http"], project, name, "missing", {}, token)
    check("a function it does not have", status == 500 and "Function not registered" in body.get("error", ""),
          (status, body))
    print("OK", flush=True)


if __name__ == "__main__":
    try:
        main(json.loads(sys.argv[1]))
        code = 0
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the client's stream threads never end by themselves
