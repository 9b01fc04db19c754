"""What a db worker serves: one entry per (project, alias), built from the config by the gateway's config layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatabaseSpec:
    project: str
    alias: str
    type: str
    """mongo | postgres | mysql | sqlite"""
    conn: str
    """As the adapter registry reads it (the config layer resolved relative SQLite paths)."""
    collections: dict[str, Any] = field(default_factory=dict)
    database: str | None = None
