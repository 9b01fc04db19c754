"""Every unary rpc of `proto.SpaceCloud` with a client generated from the project's own `.proto`: results,
Space Cloud's quirks (empty bytes, seconds), and the same statuses and messages as over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway import tokens
from gateway.grpc.stubs import pb
from sdk import Mesh
from tests.grpc.support import Grpc, grpc_for, js, result
from tests.support.servers import SECRET
from tests.support.stack import Stack, stack

ALLOW_ALL = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
OWNER = {"rule": "match", "eval": "==", "type": "string", "f2": "args.auth.id"}
OWNED_RULES = {"create": {**OWNER, "f1": "args.doc.userId"}, "read": {**OWNER, "f1": "args.find.userId"},
               "update": {**OWNER, "f1": "args.find.userId"}, "delete": {**OWNER, "f1": "args.find.userId"}}
FUNCTIONS = {"enabled": True, "services": {
    "calc": {"functions": {"add": {"rule": {"rule": "allow"}}, "whoami": {"rule": {"rule": "authenticated"}},
                           "forbidden": {"rule": {"rule": "deny"}}, "nap": {"rule": {"rule": "allow"}}}},
}}


@dataclass
class Env:
    st: Stack
    rpc: Grpc
    owned: str

    def meta(self, col: str = "", token: str = "") -> pb.Meta:
        return pb.Meta(project=self.st.project, dbType=self.st.alias, col=col, token=token)

    def token(self, uid: str) -> str:
        return tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=self.st.project, ttl=600)


@pytest.fixture
async def env(tmp_path: Path, nats_url: str) -> AsyncIterator[Env]:
    owned = "owned" + uuid.uuid4().hex[:8]
    cols = {"default": {"rules": ALLOW_ALL}, owned: {"rules": OWNED_RULES},
            "users": {"rules": {"read": {"rule": "authenticated"},
                                "update": {**OWNER, "f1": "args.find.id"}}}}
    async with (
        stack("sqlite", tmp_path, nats_url, collections=cols, functions=FUNCTIONS,
              auth={"email": {"enabled": True}, "tokenTTL": 600}) as st,
        grpc_for(st.gw) as rpc,
    ):
        yield Env(st, rpc, owned)


def col() -> str:
    return "c" + uuid.uuid4().hex[:10]


async def test_crud_round_trip_with_options_and_space_clouds_shapes(env: Env) -> None:
    s, c = env.rpc.stub, col()
    r = await s.Create(pb.CreateRequest(document=js([{"id": "1", "n": 1, "t": "b"}, {"id": "2", "n": 2, "t": "a"},
                                                     {"id": "3", "n": 3, "t": "a"}]),
                                        operation="all", meta=env.meta(c)))
    assert (r.status, r.error, r.result) == (200, "", b"")  # a write answers no result, as Space Cloud's did
    # no options at all (Space Cloud's v0.12 crashed here) and empty find bytes mean {}
    r = await s.Read(pb.ReadRequest(operation="count", meta=env.meta(c)))
    assert (r.status, result(r)) == (200, 3)
    opts = pb.ReadOptions(sort={"t": 1, "n": -1}, select={"n": 1}, skip=1, limit=1)
    r = await s.Read(pb.ReadRequest(find=js({"n": {"$gte": 1}}), operation="all", options=opts, meta=env.meta(c)))
    assert (r.status, result(r)) == (200, [{"id": "2", "n": 2}])  # the id comes with a select, as in Mongo
    r = await s.Read(pb.ReadRequest(operation="distinct", options=pb.ReadOptions(distinct="t"), meta=env.meta(c)))
    assert r.status == 200 and sorted(str(v) for v in result(r)) in (["a", "b"], ["{'t': 'a'}", "{'t': 'b'}"])
    r = await s.Read(pb.ReadRequest(find=js({"id": "1"}), operation="one", meta=env.meta(c)))
    assert result(r) == {"id": "1", "n": 1, "t": "b"}

    r = await s.Update(pb.UpdateRequest(find=js({"t": "a"}), operation="all",
                                        update=js({"$inc": {"n": 10}, "$set": {"u": True}}), meta=env.meta(c)))
    assert r.status == 200, r.error
    r = await s.Update(pb.UpdateRequest(find=js({"id": "9"}), operation="upsert", update=js({"$set": {"n": 9}}),
                                        meta=env.meta(c)))
    assert r.status == 200, r.error
    r = await s.Aggregate(pb.AggregateRequest(pipeline=js([{"$match": {"u": True}}, {"$sort": {"n": 1}}]),
                                              operation="all", meta=env.meta(c)))
    assert r.status == 200 and [d["n"] for d in result(r)] == [12, 13]
    r = await s.Delete(pb.DeleteRequest(find=js({"n": {"$gt": 10}}), operation="all", meta=env.meta(c)))
    assert r.status == 200
    r = await s.Read(pb.ReadRequest(operation="all", options=pb.ReadOptions(sort={"id": 1}), meta=env.meta(c)))
    assert [d["id"] for d in result(r)] == ["1", "9"]
    # op `one` matching nothing: the HTTP 404
    r = await s.Read(pb.ReadRequest(find=js({"id": "nope"}), operation="one", meta=env.meta(c)))
    http = await env.st.http.post(env.st.crud(c, "read"), json={"op": "one", "find": {"id": "nope"}})
    assert (r.status, r.error) == (http.status_code, http.json()["error"]) == (404, http.json()["error"])


async def test_batch_runs_in_one_transaction(env: Env) -> None:
    s, c, c2 = env.rpc.stub, col(), col()
    await s.Create(pb.CreateRequest(document=js({"id": "x", "n": 1}), operation="one", meta=env.meta(c)))
    reqs = [pb.AllRequest(col=c2, type="create", operation="one", document=js({"id": "b1", "v": 1})),
            pb.AllRequest(col=c, type="update", operation="all", find=js({"id": "x"}), update=js({"$inc": {"n": 1}})),
            pb.AllRequest(col=c, type="delete", operation="all", find=js({"id": "nothing"}))]
    r = await s.Batch(pb.BatchRequest(batchrequest=reqs, meta=env.meta()))
    assert (r.status, r.error) == (200, "")
    assert result(await s.Read(pb.ReadRequest(find=js({"id": "x"}), operation="one", meta=env.meta(c))))["n"] == 2
    # a failing sub-request (duplicate id) undoes the others
    reqs = [pb.AllRequest(col=c, type="update", operation="all", find=js({"id": "x"}), update=js({"$inc": {"n": 5}})),
            pb.AllRequest(col=c2, type="create", operation="one", document=js({"id": "b1"}))]
    r = await s.Batch(pb.BatchRequest(batchrequest=reqs, meta=env.meta()))
    assert r.status == 409, r.error
    assert result(await s.Read(pb.ReadRequest(find=js({"id": "x"}), operation="one", meta=env.meta(c))))["n"] == 2
    # an invalid sub-request is a 400 naming it, before anything runs
    reqs = [pb.AllRequest(col=c, type="create", operation="one", document=js({"id": "y"})),
            pb.AllRequest(col=c, type="drop", operation="all")]
    r = await s.Batch(pb.BatchRequest(batchrequest=reqs, meta=env.meta()))
    assert r.status == 400 and "reqs[1]" in r.error
    r = await s.Batch(pb.BatchRequest(batchrequest=[], meta=env.meta()))
    assert r.status == 400


async def test_rules_decide_exactly_as_over_http(env: Env) -> None:
    s, owned = env.rpc.stub, env.owned
    ann, bob = env.token("ann"), env.token("bob")
    doc = {"id": "a1", "userId": "ann"}
    r = await s.Create(pb.CreateRequest(document=js(doc), operation="one", meta=env.meta(owned, bob)))
    http = await env.st.http.post(env.st.crud(owned, "create"), json={"op": "one", "doc": doc},
                                  headers={"Authorization": f"Bearer {bob}"})
    assert (r.status, r.error) == (http.status_code, http.json()["error"]) and r.status == 403
    r = await s.Create(pb.CreateRequest(document=js(doc), operation="one", meta=env.meta(owned, ann)))
    assert r.status == 200, r.error
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="all", meta=env.meta(owned, ann)))
    assert result(r) == [doc]
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="all", meta=env.meta(owned, bob)))
    assert r.status == 403
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="all", meta=env.meta(owned)))
    assert r.status in (401, 403)
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="all", meta=env.meta(owned, "not-a-jwt")))
    http = await env.st.http.post(env.st.crud(owned, "read"), json={"find": {"userId": "ann"}},
                                  headers={"Authorization": "Bearer not-a-jwt"})
    assert (r.status, r.error) == (http.status_code, http.json()["error"]) == (401, http.json()["error"])
    # no aggr rule on that collection: deny, 401 as Space Cloud
    r = await s.Aggregate(pb.AggregateRequest(pipeline=js([]), operation="all", meta=env.meta(owned, ann)))
    assert r.status == 401
    # a batch is authorized per sub-request: one denied write stops all of them
    reqs = [pb.AllRequest(col=owned, type="create", operation="one", document=js({"id": "a2", "userId": "ann"})),
            pb.AllRequest(col=owned, type="create", operation="one", document=js({"id": "a3", "userId": "bob"}))]
    assert (await s.Batch(pb.BatchRequest(batchrequest=reqs, meta=env.meta("", ann)))).status == 403
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="count", meta=env.meta(owned, ann)))
    assert result(r) == 1
    # a Bearer prefix is read like the HTTP header
    meta = env.meta(owned, f"Bearer {ann}")
    r = await s.Read(pb.ReadRequest(find=js({"userId": "ann"}), operation="count", meta=meta))
    assert result(r) == 1


@pytest.mark.parametrize(("request_", "status", "needle"), [
    (pb.ReadRequest(find=b"{not json", operation="all"), 400, "`find` must be JSON text"),
    (pb.ReadRequest(find=js([1]), operation="all"), 400, "`find` must be a JSON object"),
    (pb.ReadRequest(find=js({"n": {"$where": "1"}}), operation="all"), 400, "$where"),
    (pb.ReadRequest(operation="sideways"), 400, "invalid op"),
    (pb.ReadRequest(operation="distinct"), 400, "options.distinct"),
    (pb.CreateRequest(document=js([]), operation="all"), 400, "non-empty list"),
    (pb.CreateRequest(document=b"", operation="one"), 400, "`doc` must be an object"),
    (pb.UpdateRequest(find=js({}), operation="all"), 400, "`update` is required"),
    (pb.UpdateRequest(find=js({}), operation="all", update=js({"$explode": {"a": 1}})), 400, "$explode"),
    (pb.AggregateRequest(pipeline=js({"$match": {}}), operation="all"), 400, "pipe"),
    (pb.DeleteRequest(find=js({}), operation="upsert"), 400, "invalid op"),
])
async def test_bad_input_is_the_http_4xx(env: Env, request_: Any, status: int, needle: str) -> None:
    request_.meta.CopyFrom(env.meta(col()))
    method = getattr(env.rpc.stub, type(request_).__name__.removesuffix("Request"))
    r = await method(request_)
    assert r.status == status and needle in r.error, (r.status, r.error)


async def test_what_a_request_names_must_exist(env: Env) -> None:
    s = env.rpc.stub
    r = await s.Read(pb.ReadRequest(operation="all"))
    assert r.status == 400 and "`meta`" in r.error
    r = await s.Read(pb.ReadRequest(operation="all", meta=pb.Meta(project="nope", dbType=env.st.alias, col="c")))
    assert r.status == 404 and "nope" in r.error
    r = await s.Read(pb.ReadRequest(operation="all", meta=pb.Meta(project=env.st.project, dbType="nodb", col="c")))
    assert r.status == 404 and "nodb" in r.error
    r = await s.Read(pb.ReadRequest(operation="all", meta=env.meta("bad name!")))
    assert r.status == 400
    r = await s.Read(pb.ReadRequest(operation="all", meta=env.meta("_sc_credentials")))
    assert r.status == 403


async def test_a_request_over_the_body_limit_is_413(tmp_path: Path, nats_url: str) -> None:
    async with (
        stack("sqlite", tmp_path, nats_url, collections={"default": {"rules": ALLOW_ALL}},
              settings={"max_body_bytes": 2048}) as st,
        grpc_for(st.gw) as rpc,
    ):
        meta = pb.Meta(project=st.project, dbType=st.alias, col="big")
        r = await rpc.stub.Create(pb.CreateRequest(document=js({"id": "1", "t": "x" * 4096}), meta=meta))
        assert r.status == 413 and "2048" in r.error
        r = await rpc.stub.Create(pb.CreateRequest(document=js({"id": "1", "t": "x" * 100}), meta=meta))
        assert r.status == 200


@pytest.fixture
async def calc(env: Env, nats_url: str) -> AsyncIterator[Mesh]:
    svc = Mesh("calc", project=env.st.project, nats_url=nats_url)

    @svc.function
    async def add(params: dict[str, Any], auth: Any) -> Any:
        return params["a"] + params["b"]

    @svc.function
    async def whoami(params: Any, auth: Any) -> Any:
        return auth

    @svc.function
    async def nap(params: Any, auth: Any) -> str:
        await asyncio.sleep(float(params))
        return "rested"

    async with svc:
        yield svc


async def test_call_reaches_a_python_service_with_the_callers_claims(env: Env, calc: Mesh) -> None:
    s, p = env.rpc.stub, env.st.project
    r = await s.Call(pb.FunctionsRequest(service="calc", function="add", params=js({"a": 2, "b": 3}), timeout=5,
                                         project=p))
    assert (r.status, result(r)) == (200, 5)
    r = await s.Call(pb.FunctionsRequest(service="calc", function="whoami", params=js(None), timeout=5, project=p,
                                         token=env.token("ann")))
    assert r.status == 200 and result(r)["id"] == "ann"
    for func, token in (("whoami", ""), ("forbidden", env.token("ann")), ("undeclared", "")):
        r = await s.Call(pb.FunctionsRequest(service="calc", function=func, timeout=5, project=p, token=token))
        http = await env.st.http.post(f"/v1/api/{p}/functions/calc/{func}", json={"timeout": 5000},
                                      headers={"Authorization": f"Bearer {token}"} if token else {})
        assert (r.status, r.error) == (http.status_code, http.json()["error"]), func
        assert r.status in (401, 403)
    r = await s.Call(pb.FunctionsRequest(service="calc", function="add", params=b"{oops", project=p))
    assert r.status == 400
    r = await s.Call(pb.FunctionsRequest(service="bad name", function="add", project=p))
    assert r.status == 400
    r = await s.Call(pb.FunctionsRequest(service="calc", function="add", params=js({"a": 1, "b": 1}), project=p,
                                         timeout=-1))
    assert r.status == 400 and "seconds" in r.error


async def test_call_timeout_is_read_in_seconds(env: Env, calc: Mesh) -> None:
    s, p = env.rpc.stub, env.st.project
    # 1 means one second (Space Cloud's gRPC clients send 5 for their 5000 ms default), not one millisecond
    r = await s.Call(pb.FunctionsRequest(service="calc", function="nap", params=js(0.3), timeout=1, project=p))
    assert (r.status, result(r)) == (200, "rested")
    r = await s.Call(pb.FunctionsRequest(service="calc", function="nap", params=js(1.5), timeout=1, project=p))
    assert r.status == 504, (r.status, r.error)
    # 0 (proto3's "not set") is the default of 5 s, not "fail at once"
    r = await s.Call(pb.FunctionsRequest(service="calc", function="nap", params=js(0.2), project=p))
    assert (r.status, result(r)) == (200, "rested")


async def test_no_instance_of_a_service_is_503_at_once(env: Env) -> None:
    r = await env.rpc.stub.Call(pb.FunctionsRequest(service="calc", function="add", params=js({}), timeout=30,
                                                    project=env.st.project))
    assert r.status == 503


async def test_email_users_over_grpc(env: Env) -> None:
    s, meta = env.rpc.stub, env.meta()
    addr = f"u{uuid.uuid4().hex[:8]}@example.com"
    r = await s.SignUp(pb.SignUpRequest(email=addr, name="Ann", password="s3cret!", role="user", meta=meta))
    assert r.status == 200, r.error
    up = result(r)
    assert up["user"]["email"] == addr and "pass" not in up["user"] and up["token"]
    uid = up["user"][env.st.id]
    r = await s.SignUp(pb.SignUpRequest(email=addr, name="Ann", password="other", meta=meta))  # role unset: default
    assert (r.status, r.error) == (409, "User with provided email already exists")
    r = await s.SignUp(pb.SignUpRequest(email=f"x{addr}", name="A", password="p", role="admin", meta=meta))
    assert r.status == 403
    r = await s.SignUp(pb.SignUpRequest(email="not-an-email", name="A", password="p", meta=meta))
    assert r.status == 400
    r = await s.SignIn(pb.SignInRequest(email=addr, password="wrong", meta=meta))
    assert (r.status, r.error) == (401, "Given credentials are not correct")
    r = await s.SignIn(pb.SignInRequest(email=addr.upper(), password="s3cret!", meta=meta))
    assert r.status == 200 and result(r)["user"][env.st.id] == uid
    token = result(r)["token"]

    r = await s.Profile(pb.ProfileRequest(id=uid, meta=env.meta()))
    assert r.status == 401
    r = await s.Profile(pb.ProfileRequest(id=uid, meta=env.meta(token=token)))
    assert r.status == 200 and result(r)["user"]["name"] == "Ann" and "pass" not in result(r)["user"]
    r = await s.Profiles(pb.ProfilesRequest(meta=env.meta(token=token)))
    assert r.status == 200 and uid in [u[env.st.id] for u in result(r)]  # the list itself, as Space Cloud
    r = await s.EditProfile(pb.EditProfileRequest(id=uid, name="Annie", password="n3w", meta=env.meta(token=token)))
    assert r.status == 200 and result(r)["user"]["name"] == "Annie"
    r = await s.SignIn(pb.SignInRequest(email=addr, password="n3w", meta=meta))
    assert r.status == 200
    r = await s.EditProfile(pb.EditProfileRequest(id=uid, meta=env.meta(token=token)))
    assert r.status == 400  # nothing to change
    other = env.token("someone-else")
    r = await s.EditProfile(pb.EditProfileRequest(id=uid, name="Mallory", meta=env.meta(token=other)))
    assert r.status == 403


async def test_files_and_pubsub_answer_501(env: Env) -> None:
    s, meta = env.rpc.stub, env.meta(token="")
    for r in (await s.CreateFolder(pb.CreateFolderRequest(path="/", name="d", meta=meta)),
              await s.ListFiles(pb.ListFilesRequest(path="/", meta=meta)),
              await s.DeleteFile(pb.DeleteFileRequest(path="/f", meta=meta)),
              await s.PubsubPublish(pb.PubsubPublishRequest(subject="s", msg=js(1), meta=meta))):
        assert r.status == 501 and "not available on this server" in r.error

    async def upload() -> AsyncIterator[pb.UploadFileRequest]:
        yield pb.UploadFileRequest(path="/", name="f", meta=meta)
        yield pb.UploadFileRequest(payload=b"data")

    r = await s.UploadFile(upload())
    assert r.status == 501 and "file storage" in r.error
    chunks = [c async for c in s.DownloadFile(pb.DownloadFileRequest(path="/f", meta=meta))]
    assert [(c.status, "file storage" in c.error) for c in chunks] == [(501, True)]

    async def subscribe() -> AsyncIterator[pb.PubsubSubscribeRequest]:
        yield pb.PubsubSubscribeRequest(subject="s", type="pubsub-subscribe", id="1", project=env.st.project)

    answers = [a async for a in s.PubsubSubscribe(subscribe())]
    assert [(a.id, a.status) for a in answers] == [("1", 501)] and "pub/sub" in answers[0].error
