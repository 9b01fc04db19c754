"""The one module that owns NATS subject names."""

from __future__ import annotations

import re

from common.errors import BadRequest

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

DB_QUEUE = "sc.db"
"""Queue group of the db workers."""


def check_name(kind: str, value: str) -> str:
    """Validate a name that becomes one subject token (project, service, function, alias, collection)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise BadRequest(f"invalid {kind} name {value!r}: use letters, digits, '_' and '-' (at most 128)")
    return value


def fn(project: str, service: str, func: str) -> str:
    return f"sc.{project}.fn.{service}.{func}"


def fn_service_wildcard(project: str, service: str) -> str:
    return f"sc.{project}.fn.{service}.*"


def db(project: str, alias: str, op: str) -> str:
    return f"sc.{project}.db.{alias}.{op}"


def db_all() -> str:
    return "sc.*.db.*.*"


def changes(project: str, alias: str, col: str) -> str:
    return f"sc.{project}.changes.{alias}.{col}"


def changes_stream_subjects() -> str:
    """Everything a JetStream change stream retains."""
    return "sc.*.changes.>"


def db_any() -> str:
    """Every db request subject, whatever its depth (permissions are granted on this)."""
    return "sc.*.db.>"


def fn_any() -> str:
    """Every function subject of every project."""
    return "sc.*.fn.>"


def fn_of_service(service: str) -> str:
    """The functions of one service, in any project (what an instance of it may listen to)."""
    return f"sc.*.fn.{service}.*"


def inbox_prefix(role: str, service: str | None = None) -> str:
    """Where a connection gets its replies: `_sc.<role>`, `_sc.svc.<service>` for a service.

    Each role reads only its own inboxes, so no one reads the gateway's replies."""
    return f"_sc.svc.{service}" if service else f"_sc.{role}"


def parse_fn(subject: str) -> tuple[str, str, str]:
    """`sc.<project>.fn.<service>.<func>` -> (project, service, func)."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "sc" or parts[2] != "fn":
        raise BadRequest(f"not a function subject: {subject}")
    return parts[1], parts[3], parts[4]


def parse_db(subject: str) -> tuple[str, str, str]:
    """`sc.<project>.db.<alias>.<op>` -> (project, alias, op)."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "sc" or parts[2] != "db":
        raise BadRequest(f"not a db subject: {subject}")
    return parts[1], parts[3], parts[4]
