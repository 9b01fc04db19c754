"""Loading the Space Cloud-shaped config (YAML or JSON) into small typed, validated objects.

Every knob has one home here: per project `DbConfig` (with its `CollectionConfig`s), `AuthConfig`
and `FunctionsConfig`; for the whole process `GatewaySettings` (the file's `gateway:` section, which
CLI flags may override) and `AdminConfig`. Features ask these objects (`db.rule(col, op)`,
`db.id_field`, `project.auth.email_enabled`) instead of reading raw dicts.

`$VAR` values of `secret`, `conn` and the admin credentials come from the environment, read here
at the edge. With no file, `dev_config()` gives a working development setup on SQLite.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from adapters.indexes import Index
from adapters.indexes import parse as parse_indexes
from adapters.names import collection_key
from adapters.registry import sqlite_path
from common.errors import InvalidQuery
from gateway.rules import crud_rule, function_rule, validate_rule
from mesh.changelog import LogSettings
from mesh.subjects import NAME_RE
from worker.spec import DatabaseSpec

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


USERS = "users"
"""The collection email sign-up keeps its users in (profiles only: never a password hash)."""
RESERVED_PREFIX = "_sc_"
"""Collections whose name starts with this belong to the server; no client request may name one."""
CREDENTIALS = RESERVED_PREFIX + "credentials"
"""Where the password hashes of email users live, apart from `users`."""
USER_FIELDS = ("email", "role", "pass")
"""Fields of `users` that CRUD requests may never write (sign-up and edit_profile own them)."""


class ConfigError(ValueError):
    """The config file cannot be used; the message says where and why."""


@dataclass
class CollectionConfig:
    """`modules.crud.<alias>.collections.<name>`: realtime, rules per operation, typed fields, indexes."""

    name: str
    realtime: bool = True
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    fields: dict[str, Any] | None = None
    indexes: list[Index] = field(default_factory=list)
    """Indexes on document paths (`indexes: [userId, [userId, done]]`), made by the db worker
    (`adapters.indexes`)."""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class DbConfig:
    alias: str
    type: str
    conn: str
    collections: dict[str, CollectionConfig] = field(default_factory=dict)
    database: str | None = None

    def __post_init__(self) -> None:
        # Collections are keyed as the database compares names (`RT_TODOS` is `todos` on SQLite), so a
        # name the database takes for a configured collection always finds that collection's rules.
        self._by_key: dict[str, CollectionConfig] = {}
        for name, spec in self.collections.items():
            key = collection_key(self.type, name)
            if key in self._by_key:
                raise ConfigError(f"modules.crud.{self.alias}.collections: {self._by_key[key].name!r} and {name!r} "
                                  f"are one collection on {self.type} (names are compared without case)")
            self._by_key[key] = spec
        # The placement lookup reads Space Cloud's shape; the rule dicts are shared with `collections`.
        self._placement = {"collections": {k: c.raw for k, c in self._by_key.items()}}

    def collection(self, col: str) -> CollectionConfig | None:
        """The configured collection `col` names, as the database compares names."""
        return self._by_key.get(collection_key(self.type, col))

    @property
    def id_field(self) -> str:
        """The primary-key field: `_id` on Mongo, `id` on SQL (as in Space Cloud)."""
        return "_id" if self.type == "mongo" else "id"

    def rule(self, col: str, op: str) -> dict[str, Any] | None:
        """The rule for `op` on `col` (the collection's, or `default`'s when the collection is not listed)."""
        return crud_rule(self._placement, collection_key(self.type, col), op)

    def realtime_enabled(self, col: str) -> bool:
        """`isRealtimeEnabled`; on by default, except for `users` (it would push every sign-up)."""
        spec = self.collection(col)
        return collection_key(self.type, col) != USERS if spec is None else spec.realtime


@dataclass
class AuthConfig:
    """`modules.auth`: email sign-up/sign-in and user tokens."""

    email_enabled: bool = False
    signup_roles: list[str] = field(default_factory=lambda: ["user"])
    token_ttl: int = 7 * 24 * 3600
    reveal_unknown_emails: bool = False
    """`email.revealUnknownEmails`: answer a sign-in with an unknown email 404 "User not found", as Space
    Cloud did (it tells anyone which emails have accounts); by default it is the same 401 as a wrong password."""
    allow_tokens_without_expiry: bool = False
    """`allowTokensWithoutExpiry`: accept user tokens with no `exp` claim (Space Cloud issued such tokens)."""


@dataclass
class FunctionsConfig:
    """`modules.functions`: whether calls are served, and the rules for calling and registering services."""

    enabled: bool = True
    raw: dict[str, Any] = field(default_factory=dict)

    def rule(self, service: str, func: str) -> dict[str, Any] | None:
        return function_rule(self.raw, service, func)

    def register_rule(self, service: str) -> dict[str, Any] | None:
        """Who may register `service` over a WebSocket or gRPC stream: `services.<svc>.register` when the
        service is listed (a listed service without one is never registered that way), otherwise
        `services.default.register`. None: nobody."""
        services = self.raw.get("services") or {}
        spec = services.get(service)
        if service != "default" and isinstance(spec, dict):
            rule = spec.get("register")
            return rule if isinstance(rule, dict) else None
        spec = services.get("default")
        rule = spec.get("register") if isinstance(spec, dict) else None
        return rule if isinstance(rule, dict) else None


@dataclass
class StaticRoute:
    prefix: str
    path: str
    """Absolute folder."""


@dataclass
class ProjectConfig:
    id: str
    secret: str
    name: str = ""
    crud: dict[str, DbConfig] = field(default_factory=dict)
    functions: FunctionsConfig = field(default_factory=FunctionsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    static: list[StaticRoute] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=lambda: ["*"])
    """`allowedOrigins`: web origins (`https://app.example.com`) whose pages may call this project's API;
    `*` (the default, as Space Cloud) allows any. The admin API never follows this: see `AdminConfig`."""

    def allows_origin(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin in self.allowed_origins

    def rule_services(self) -> set[str]:
        """Services that `func` rules ask: they decide for the server, so only trusted (NATS) instances
        may answer for them, never a socket."""
        found: set[str] = set()

        def walk(rule: Any) -> None:
            if isinstance(rule, dict):
                if rule.get("rule") == "func" and isinstance(rule.get("service"), str):
                    found.add(rule["service"])
                for clause in rule.get("clauses") or []:
                    walk(clause)

        for db in self.crud.values():
            for col in db.collections.values():
                for rule in col.rules.values():
                    walk(rule)
        services = self.functions.raw.get("services") or {}
        for spec in services.values() if isinstance(services, dict) else ():
            if isinstance(spec, dict):
                walk(spec.get("register"))
                for fspec in (spec.get("functions") or {}).values():
                    walk(fspec.get("rule") if isinstance(fspec, dict) else None)
        for fns in (self.functions.raw.get("rules") or {}).values():
            for rule in fns.values() if isinstance(fns, dict) else ():
                walk(rule)
        return found


@dataclass
class AdminConfig:
    user: str = "admin"
    password: str = ""
    secret: str = ""
    allowed_origins: list[str] = field(default_factory=list)
    """`admin.allowedOrigins`: other web origins that may call the config API; none by default (only
    Mission Control, served by the gateway itself), with or without `--dev`."""


@dataclass
class GatewaySettings:
    """The config file's `gateway:` section (camelCase there); CLI flags override some of them."""

    max_body_bytes: int = 1024 * 1024
    """Largest request body (and WebSocket frame) accepted; larger is a 413."""
    max_function_timeout: float = 60.0
    """Seconds: the cap on a function call's `timeout`, and how long a WebSocket service may take."""
    db_timeout: float = 10.0
    """Seconds the gateway waits for the db worker."""
    change_retention: float = 3600.0
    """Seconds of change events kept (JetStream) for clients that reconnect and resume."""
    change_replicas: int = 0
    """Replicas of the change log stream when a gateway or worker creates it (0: 3 on a cluster of 3 or more,
    else 1). An existing stream is never changed."""
    ws_queue: int = 1024
    """Frames queued per WebSocket before the socket is closed as a slow consumer (4008)."""
    socket_service_concurrency: int = 64
    """Calls in flight per service registered over a WebSocket."""
    socket_requests: int = 64
    """Requests (subscribe, register, ...) handled at once per WebSocket; more are refused until one ends."""
    socket_live_queries: int = 256
    """Live queries one connection may hold."""
    body_timeout: float = 30.0
    """Seconds a client has to send a request body; a connection that stalls gets 408 and is let go."""
    service_concurrency: int = 256
    """Calls in flight from this gateway to one service (mesh or WebSocket); beyond: 503 at once."""
    function_retries: int = 2
    """Extra attempts for a function its service declares idempotent, after a 500/503 (0: never retry)."""

    KEYS = {
        "maxBodyBytes": ("max_body_bytes", int, 1024),
        "maxFunctionTimeout": ("max_function_timeout", float, 0.001),
        "dbTimeout": ("db_timeout", float, 0.001),
        "changeRetention": ("change_retention", float, 1),
        "changeReplicas": ("change_replicas", int, 0),
        "wsQueue": ("ws_queue", int, 1),
        "socketServiceConcurrency": ("socket_service_concurrency", int, 1),
        "socketRequests": ("socket_requests", int, 1),
        "socketLiveQueries": ("socket_live_queries", int, 1),
        "bodyTimeout": ("body_timeout", float, 0.1),
        "serviceConcurrency": ("service_concurrency", int, 1),
        "functionRetries": ("function_retries", int, 0),
    }
    """File key -> (attribute, type, minimum)."""

    @classmethod
    def parse(cls, raw: Any) -> GatewaySettings:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError("gateway: must be a mapping")
        out = cls()
        for key, (attr, kind, minimum) in cls.KEYS.items():
            if key not in raw:
                continue
            value = raw[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum
            if not ok or (kind is int and not isinstance(value, int)):
                raise ConfigError(f"gateway.{key}: {'an integer' if kind is int else 'a number'} of at least {minimum}")
            setattr(out, attr, kind(value))
        return out

    def change_log(self) -> LogSettings:
        """How the change log stream is made when a gateway or worker finds none (`mesh.changelog`)."""
        return LogSettings(replicas=self.change_replicas, max_age=self.change_retention)

    def merged(self, **overrides: Any) -> GatewaySettings:
        """A copy with the given (non-None) values replaced: how CLI flags win over the file."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return GatewaySettings(**values)


@dataclass
class Config:
    projects: dict[str, ProjectConfig]
    admin: AdminConfig = field(default_factory=AdminConfig)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
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
                collections={n: c.raw for n, c in db.collections.items()}, database=db.database,
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
        path = sqlite_path(conn)  # the registry's reading of the URL, so both agree
        if path != ":memory:" and not os.path.isabs(path):
            conn = str((base / path).resolve())
    collections = spec.get("collections") or {}
    if not isinstance(collections, dict):
        raise ConfigError(f"{where}.collections: must be a mapping")
    return DbConfig(alias=alias, type=kind, conn=conn, database=spec.get("database"),
                    collections={str(n): _collection(str(n), c, f"{where}.collections.{n}")
                                 for n, c in collections.items()})


def _collection(name: str, spec: Any, where: str) -> CollectionConfig:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping")
    rules = spec.get("rules") or {}
    if not isinstance(rules, dict):
        raise ConfigError(f"{where}.rules: must be a mapping of operation to rule")
    fields_ = spec.get("fields")
    if fields_ is not None and not isinstance(fields_, dict):
        raise ConfigError(f"{where}.fields: must be a mapping of field to type")
    try:
        indexes = parse_indexes(spec["indexes"], f"{where}.indexes") if spec.get("indexes") is not None else []
    except InvalidQuery as exc:
        raise ConfigError(exc.message) from None
    raw = {**spec, "rules": rules}  # one rules dict, seen through `rules` and through `raw`
    return CollectionConfig(name=name, realtime=bool(spec.get("isRealtimeEnabled", name != USERS)), rules=rules,
                            fields=fields_, indexes=indexes, raw=raw)


def _check_rules(crud: dict[str, DbConfig], functions: dict[str, Any], where: str) -> None:
    """Every rule is checked at load: an unknown rule type or a malformed rule stops the config."""
    problems: list[str] = []
    for alias, db in crud.items():
        for col, spec in db.collections.items():
            for op, rule in spec.rules.items():
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
    _check_rules(crud, functions, where)
    routes = [
        StaticRoute(prefix=str(route["prefix"]), path=str((base / str(route["path"])).resolve()))
        for route in [*static, *gateway_routes]
        if isinstance(route, dict) and "prefix" in route and "path" in route
    ]
    origins = raw.get("allowedOrigins", ["*"])
    if not isinstance(origins, list) or not all(isinstance(o, str) and o for o in origins):
        raise ConfigError(f"{where}.allowedOrigins: a list of origins like https://app.example.com (or \"*\")")
    return ProjectConfig(
        allowed_origins=origins,
        id=pid,
        secret=secret,
        name=str(raw.get("name") or pid),
        crud=crud,
        functions=FunctionsConfig(enabled=functions.get("enabled", True) is not False, raw=functions),
        auth=_auth(auth, f"{where}.modules.auth"),
        static=routes,
    )


def _auth(auth: dict[str, Any], where: str) -> AuthConfig:
    ttl = auth.get("tokenTTL", 7 * 24 * 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ConfigError(f"{where}.tokenTTL: seconds, a positive integer")
    email = auth.get("email")
    enabled = isinstance(email, dict) and email.get("enabled") is not False
    roles = (email or {}).get("signupRoles", ["user"]) if isinstance(email, dict) else ["user"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ConfigError(f"{where}.email.signupRoles: a list of role names")
    reveal = isinstance(email, dict) and email.get("revealUnknownEmails") is True
    return AuthConfig(email_enabled=enabled, signup_roles=roles, token_ttl=ttl, reveal_unknown_emails=reveal,
                      allow_tokens_without_expiry=auth.get("allowTokensWithoutExpiry") is True)


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
    admin_origins = admin_raw.get("allowedOrigins") or []
    if not isinstance(admin_origins, list) or not all(isinstance(o, str) for o in admin_origins) \
            or "*" in admin_origins:
        raise ConfigError("admin.allowedOrigins: a list of origins like https://admin.example.com (no \"*\")")
    admin = AdminConfig(
        allowed_origins=admin_origins,
        user=str(_env(env.get("ADMIN_USER") or first.get("user") or "admin", "admin.user", env)),
        password=str(_env(env.get("ADMIN_PASS") or first.get("pass") or "", "admin.pass", env)),
        secret=str(_env(env.get("ADMIN_SECRET") or admin_raw.get("secret") or "", "admin.secret", env)),
    )
    settings = GatewaySettings.parse(raw.get("gateway"))
    return Config(projects=projects, admin=admin, gateway=settings, raw=copy.deepcopy(raw))


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
