"""What a db worker serves: one entry per (project, alias)."""

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
    collections: dict[str, Any] = field(default_factory=dict)
    database: str | None = None
