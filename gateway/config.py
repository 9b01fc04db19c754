"""Loading the Space Cloud-shaped config (YAML or JSON) into small validated objects.

`$VAR` values of `secret`, `conn` and the admin credentials come from the environment, read here
at the edge. With no file, `dev_config()` gives a working development setup on SQLite.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh.subjects import NAME_RE
from mesh.worker_spec import DatabaseSpec

log = logging.getLogger("space_cloud.config")

DB_TYPES = {
    "mongo": "mongo",
    "postgres": "postgres",
    "sql-postgres": "postgres",
    "mysql": "mysql",
    "sql-mysql": "mysql",
    "sqlite": "sqlite",
    "sql-sqlite": "sqlite",
}


class ConfigError(ValueError):
    """The config file cannot be used; the message says where and why."""


@dataclass
class DbConfig:
    alias: str
    type: str
    conn: str
    collections: dict[str, Any] = field(default_factory=dict)
    database: str | None = None

    def realtime_enabled(self, col: str) -> bool:
        spec = self.collections.get(col)
        if isinstance(spec, dict) and "isRealtimeEnabled" in spec:
            return bool(spec["isRealtimeEnabled"])
        return True


@dataclass
class ProjectConfig:
    id: str
    secret: str
    name: str = ""
    crud: dict[str, DbConfig] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)
    functions_enabled: bool = True
    auth: dict[str, Any] = field(default_factory=dict)
    static: list[dict[str, str]] = field(default_factory=list)
    token_ttl: int = 7 * 24 * 3600


@dataclass
class AdminConfig:
    user: str = "admin"
    password: str = ""
    secret: str = ""


@dataclass
class Config:
    projects: dict[str, ProjectConfig]
    admin: AdminConfig = field(default_factory=AdminConfig)
    max_body_bytes: int = 1024 * 1024
    max_function_timeout: float = 60.0
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    is_dev_default: bool = False

    def project(self, project_id: str) -> ProjectConfig | None:
        return self.projects.get(project_id)

    def databases(self) -> list[DatabaseSpec]:
        """What the db worker needs to know: every enabled database of every project."""
        return [
            DatabaseSpec(
                project=p.id, alias=db.alias, type=db.type, conn=db.conn,
                collections=db.collections, database=db.database,
            )
            for p in self.projects.values()
            for db in p.crud.values()
        ]


def _env(value: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("$") and len(value) > 1:
        name = value[1:]
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return env[name]
    return value


def _db(alias: str, spec: Any, where: str, env: dict[str, str], base: Path) -> DbConfig | None:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping")
    if spec.get("enabled") is False:
        return None
    if not NAME_RE.match(alias):
        raise ConfigError(f"{where}: alias {alias!r} must use letters, digits, '_' and '-'")
    kind = DB_TYPES.get(str(spec.get("type") or alias))
    if kind is None:
        raise ConfigError(
            f"{where}: unknown database type {spec.get('type') or alias!r} (use one of {sorted(DB_TYPES)})"
        )
    conn = _env(spec.get("conn", ""), f"{where}.conn", env)
    if not isinstance(conn, str) or not conn:
        raise ConfigError(f"{where}.conn: a connection string is required")
    if kind == "sqlite":
        path = conn.removeprefix("sqlite:///").removeprefix("sqlite://")
        if path != ":memory:" and not os.path.isabs(path):
            conn = "sqlite:///" + str((base / path).resolve())
    collections = spec.get("collections") or {}
    if not isinstance(collections, dict):
        raise ConfigError(f"{where}.collections: must be a mapping")
    return DbConfig(alias=alias, type=kind, conn=conn, collections=collections, database=spec.get("database"))


def _check_rules(crud: dict[str, DbConfig], functions: dict[str, Any], where: str) -> None:
    """Every rule is checked at load: an unknown rule type or a malformed rule stops the config."""
    from gateway.rules import validate_rule

    problems: list[str] = []
    for alias, db in crud.items():
        for col, spec in db.collections.items():
            rules = spec.get("rules") if isinstance(spec, dict) else None
            for op, rule in (rules or {}).items():
                problems += validate_rule(rule, f"{where}.modules.crud.{alias}.collections.{col}.rules.{op}")
    for svc, spec in (functions.get("services") or {}).items():
        if not isinstance(spec, dict):
            continue
        if "register" in spec:
            problems += validate_rule(spec["register"], f"{where}.modules.functions.services.{svc}.register")
        for fn, fspec in (spec.get("functions") or {}).items():
            if isinstance(fspec, dict) and "rule" in fspec:
                place = f"{where}.modules.functions.services.{svc}.functions.{fn}.rule"
                problems += validate_rule(fspec["rule"], place)
    for svc, fns in (functions.get("rules") or {}).items():
        for fn, rule in (fns or {}).items() if isinstance(fns, dict) else ():
            problems += validate_rule(rule, f"{where}.modules.functions.rules.{svc}.{fn}")
    if problems:
        raise ConfigError("invalid rules:\n  " + "\n  ".join(problems))


def _project(raw: Any, where: str, env: dict[str, str], base: Path) -> ProjectConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping")
    pid = raw.get("id")
    if not isinstance(pid, str) or not NAME_RE.match(pid):
        raise ConfigError(f"{where}.id: a project id of letters, digits, '_' and '-' is required")
    secret = _env(raw.get("secret"), f"{where}.secret", env)
    if not isinstance(secret, str) or len(secret) < 8:
        raise ConfigError(f"{where}.secret: a secret of at least 8 characters is required (it signs user tokens)")
    if len(secret.encode()) < 32:
        log.warning("%s.secret is shorter than 32 bytes: use a longer random secret for HS256", where)
    modules = raw.get("modules") or {}
    if not isinstance(modules, dict):
        raise ConfigError(f"{where}.modules: must be a mapping")
    crud: dict[str, DbConfig] = {}
    for alias, spec in (modules.get("crud") or {}).items():
        db = _db(str(alias), spec, f"{where}.modules.crud.{alias}", env, base)
        if db is not None:
            crud[db.alias] = db
    functions = modules.get("functions") or {}
    if not isinstance(functions, dict):
        raise ConfigError(f"{where}.modules.functions: must be a mapping")
    static_module = modules.get("static") or {}
    static = static_module.get("routes") or [] if static_module.get("enabled", True) is not False else []
    gateway_routes = ((raw.get("gateway") or {}).get("routes")) or []
    auth = modules.get("auth") or {}
    if not isinstance(auth, dict):
        raise ConfigError(f"{where}.modules.auth: must be a mapping")
    ttl = auth.get("tokenTTL", 7 * 24 * 3600)
    if not isinstance(ttl, int) or ttl <= 0:
        raise ConfigError(f"{where}.modules.auth.tokenTTL: seconds, a positive integer")
    _check_rules(crud, functions, where)
    routes: list[dict[str, str]] = []
    for route in [*static, *gateway_routes]:
        if isinstance(route, dict) and "prefix" in route and "path" in route:
            routes.append({"prefix": str(route["prefix"]), "path": str((base / str(route["path"])).resolve())})
    return ProjectConfig(
        id=pid,
        secret=secret,
        name=str(raw.get("name") or pid),
        crud=crud,
        functions=functions,
        functions_enabled=functions.get("enabled", True) is not False,
        auth=auth,
        static=routes,
        token_ttl=ttl,
    )


def parse(raw: Any, *, env: dict[str, str] | None = None, base: Path | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    base = base or Path.cwd()
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a mapping with `projects`")
    projects_raw = raw.get("projects")
    if isinstance(projects_raw, dict):  # v0.9 shape: a map keyed by id
        projects_raw = [{"id": k, **v} for k, v in projects_raw.items() if isinstance(v, dict)]
    if not isinstance(projects_raw, list) or not projects_raw:
        raise ConfigError("config.projects: a list with at least one project is required")
    projects: dict[str, ProjectConfig] = {}
    for i, p in enumerate(projects_raw):
        proj = _project(p, f"projects[{i}]", env, base)
        if proj.id in projects:
            raise ConfigError(f"projects[{i}].id: duplicate project id {proj.id!r}")
        projects[proj.id] = proj
    admin_raw = raw.get("admin") or {}
    users = admin_raw.get("users") or []
    first = users[0] if users and isinstance(users[0], dict) else {}
    admin = AdminConfig(
        user=str(_env(env.get("ADMIN_USER") or first.get("user") or "admin", "admin.user", env)),
        password=str(_env(env.get("ADMIN_PASS") or first.get("pass") or "", "admin.pass", env)),
        secret=str(_env(env.get("ADMIN_SECRET") or admin_raw.get("secret") or "", "admin.secret", env)),
    )
    gw = raw.get("gateway") or {}
    max_body = gw.get("maxBodyBytes", 1024 * 1024) if isinstance(gw, dict) else 1024 * 1024
    if not isinstance(max_body, int) or max_body < 1024:
        raise ConfigError("gateway.maxBodyBytes: an integer of at least 1024")
    return Config(projects=projects, admin=admin, max_body_bytes=max_body, raw=copy.deepcopy(raw))


def load(path: str | Path, *, env: dict[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
    cfg = parse(raw, env=env, base=p.resolve().parent)
    cfg.path = p.resolve()
    return cfg


ALLOW_ALL = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}


def dev_secret(home: Path | None = None) -> str:
    """A per-machine random secret for the development config, kept across restarts."""
    path = (home or Path.home() / ".space-cloud") / "dev-secret"
    try:
        return path.read_text().strip()
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        path.write_text(value)
        path.chmod(0o600)
        return value


def dev_raw(db_path: str = "space-cloud.db", secret: str = "") -> dict[str, Any]:
    return {
        "projects": [
            {
                "id": "myproject",
                "name": "Development project",
                "secret": secret,
                "modules": {
                    "crud": {
                        "sqlite": {
                            "type": "sqlite",
                            "conn": db_path,
                            "collections": {"default": {"isRealtimeEnabled": True, "rules": ALLOW_ALL}},
                        }
                    },
                    "auth": {"email": {"enabled": True}},
                    "functions": {
                        "enabled": True,
                        "services": {"default": {"functions": {"default": {"rule": {"rule": "allow"}}}}},
                    },
                },
            }
        ],
        "admin": {"users": [{"user": "admin", "pass": ""}], "secret": secret},
    }


def dev_config(*, home: Path | None = None) -> Config:
    secret = dev_secret(home)
    cfg = parse(dev_raw(secret=secret), env={}, base=Path.cwd())
    cfg.is_dev_default = True
    return cfg
