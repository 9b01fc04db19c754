"""Loading configs: Space Cloud shapes, $VAR values, and rules checked at load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.registry import sqlite_path
from gateway.config import ConfigError, dev_config, load, parse
from tests.support.servers import SECRET, gateway, project_config


def test_env_values_and_aliases(tmp_path: Path) -> None:
    raw = {"projects": [{"id": "app", "secret": "$APP_SECRET", "modules": {"crud": {
        "sql-postgres": {"conn": "$PG", "collections": {}},
        "mongo": {"conn": "mongodb://localhost/app"},
        "local": {"type": "sqlite", "conn": "data.db"},
        "off": {"type": "mysql", "conn": "mysql://x", "enabled": False},
    }}}]}
    cfg = parse(raw, env={"APP_SECRET": "s" * 32, "PG": "postgresql://db/app"}, base=tmp_path)
    crud = cfg.projects["app"].crud
    assert {a: d.type for a, d in crud.items()} == {"sql-postgres": "postgres", "mongo": "mongo", "local": "sqlite"}
    assert crud["sql-postgres"].conn == "postgresql://db/app"
    assert crud["local"].conn == str(tmp_path / "data.db")
    assert sqlite_path(crud["local"].conn) == str(tmp_path / "data.db")
    with pytest.raises(ConfigError, match="APP_SECRET is not set"):
        parse(raw, env={"PG": "x"})


@pytest.mark.parametrize(("conn", "expected"), [
    ("sqlite:///var/data/app.db", "/var/data/app.db"),  # three slashes: an absolute path
    ("sqlite://rel/app.db", "{base}/rel/app.db"),
    ("app.db", "{base}/app.db"),
    ("/abs/app.db", "/abs/app.db"),
    (":memory:", ":memory:"),
])
def test_the_registry_reads_sqlite_urls_as_the_config_resolved_them(tmp_path: Path, conn: str, expected: str) -> None:
    raw = {"projects": [{"id": "a", "secret": SECRET, "modules": {"crud": {"db": {"type": "sqlite", "conn": conn}}}}]}
    [spec] = parse(raw, env={}, base=tmp_path).databases()
    assert sqlite_path(spec.conn) == expected.format(base=tmp_path.resolve())


@pytest.mark.parametrize(("raw", "fragment"), [
    ({}, "projects"),
    ({"projects": [{"id": "a b", "secret": SECRET}]}, "projects[0].id"),
    ({"projects": [{"id": "a", "secret": "short"}]}, "secret"),
    ({"projects": [{"id": "a", "secret": SECRET, "modules": {"crud": {"x": {"conn": "c"}}}}]}, "unknown database"),
    ({"projects": [{"id": "a", "secret": SECRET, "modules": {"crud": {"sqlite": {"conn": "c", "collections": {
        "t": {"rules": {"read": {"rule": "sometimes"}}}}}}}}]}, "unknown rule type 'sometimes'"),
    ({"projects": [{"id": "a", "secret": SECRET, "modules": {"functions": {"services": {"s": {"functions": {
        "f": {"rule": {"rule": "match", "eval": "~=", "type": "string", "f1": "a", "f2": "b"}}}}}}}}]}, "~="),
])
def test_bad_configs_are_refused_with_the_place(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse(raw, env={})
    assert fragment in str(err.value)


def test_load_reports_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("projects: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_dev_config_keeps_its_secret(tmp_path: Path) -> None:
    a, b = dev_config(home=tmp_path), dev_config(home=tmp_path)
    assert a.projects["myproject"].secret == b.projects["myproject"].secret
    assert len(a.projects["myproject"].secret) >= 32 and a.is_dev_default
    assert oct((tmp_path / "dev-secret").stat().st_mode & 0o777) == "0o600"


async def test_each_decision_is_explained_in_the_debug_log(nats_url: str, caplog: pytest.LogCaptureFixture) -> None:
    rule = {"rule": "or", "clauses": [{"rule": "deny"}, {"rule": "match", "eval": "==", "type": "string",
                                                         "f1": "args.params.x", "f2": "yes"}]}
    cfg = project_config("explained", functions={"services": {"s": {"functions": {"f": {"rule": rule}}}}})
    caplog.set_level(logging.DEBUG, logger="space_cloud.rules")
    async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        from gateway import tokens

        t = tokens.issue({"id": "u"}, secret=SECRET, project="explained", ttl=60)
        r = await http.post("/v1/api/explained/functions/s/f", json={"params": {"x": "no"}},
                            headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 403
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "space_cloud.rules"]
    assert any("denied function s.f" in m and "match" in m for m in messages), messages
