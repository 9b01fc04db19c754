"""The DDL of change capture, per dialect: the outbox and lease tables of a namespace, and the triggers
that copy every row change of a collection's table into the outbox, whoever wrote it.

An outbox row is (seq, col, op, v, doc, old, at_ms): the collection, insert|update|delete, the
document's version after the change, the row after (NULL for a delete) and before (NULL for an
insert) as a JSON object of its columns (`_v` left out), and the database's clock in ms.

Versions stay monotonic per document for writers that do not know about `_v`: a row written
without a higher `_v` gets max(old `_v` + 1, now in µs) (PostgreSQL and MySQL before the write;
SQLite, which cannot change NEW, right after it, recording the change once). A table without a
`_v` column gets the database clock in µs as the version of each change.
"""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers and validated collection names

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.names import VERSION_FIELD
from adapters.sql.dialect import Dialect

OUTBOX = "_sc_changes"
LEASES = "_sc_relay"
PREFIX = "_sc_"
"""Tables whose name starts with this are the server's own and never captured."""


def short_hash(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:n]


def now_us(d: Dialect) -> str:
    if d.name == "postgres":
        return "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
    if d.name == "mysql":
        return "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"
    return "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"


def now_ms(d: Dialect) -> str:
    if d.name == "postgres":
        return "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    if d.name == "mysql":
        return "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
    return "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"


@dataclass(frozen=True, slots=True)
class Target:
    """One collection's table, as the triggers see it."""

    col: str
    """The collection name recorded in the outbox (validated: letters, digits, _)."""
    sql: str
    """The table as SQL text names it (quoted, maybe schema-qualified)."""
    columns: tuple[str, ...]
    """Its columns, `_v` included when it has one."""
    json_columns: frozenset[str] = frozenset()
    """Columns holding JSON (SQLite stores it as text: it is parsed into the outbox JSON)."""

    @property
    def versioned(self) -> bool:
        return VERSION_FIELD in self.columns


def outbox_ddl(d: Dialect, outbox: str, leases: str) -> list[str]:
    """The outbox table, the lease table and its one row, of a namespace (`outbox`, `leases`: quoted SQL
    names). Run only what is missing: MySQL warns about what exists already."""
    if d.name == "postgres":
        seq, js, text = "BIGSERIAL PRIMARY KEY", "JSONB", "TEXT"
    elif d.name == "mysql":
        seq, js, text = "BIGINT AUTO_INCREMENT PRIMARY KEY", "LONGTEXT", "VARCHAR(255)"
    else:
        seq, js, text = "INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"
    tail = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" if d.name == "mysql" else ""
    row = (f"INSERT INTO {leases} (name, owner, until_ms) SELECT 'relay', '', 0 FROM DUAL WHERE NOT EXISTS "
           f"(SELECT 1 FROM {leases} WHERE name = 'relay')" if d.name == "mysql" else
           f"INSERT INTO {leases} (name, owner, until_ms) VALUES ('relay', '', 0) ON CONFLICT DO NOTHING")
    return [
        f"CREATE TABLE IF NOT EXISTS {outbox} (seq {seq}, col {text} NOT NULL, op {text} NOT NULL, "
        f"v BIGINT NOT NULL, doc {js}, old {js}, at_ms BIGINT NOT NULL){tail}",
        f"CREATE TABLE IF NOT EXISTS {leases} (name {text} PRIMARY KEY, owner {text} NOT NULL, "
        f"until_ms BIGINT NOT NULL){tail}",
        row,
    ]


def pg_functions(d: Dialect, schema: str, outbox: str) -> list[str]:
    """The namespace's two trigger functions (PostgreSQL): capture into the outbox, and versions."""
    s = d.q(schema)
    us = now_us(d)
    return [
        f"""CREATE OR REPLACE FUNCTION {s}."_sc_capture"() RETURNS trigger LANGUAGE plpgsql AS $sc$
DECLARE r jsonb; o jsonb; v bigint; t bigint := {us};
BEGIN
  IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD) - '_v'; END IF;
  IF TG_OP <> 'DELETE' THEN r := to_jsonb(NEW); v := COALESCE((r ->> '_v')::bigint, t); r := r - '_v';
  ELSE v := COALESCE((to_jsonb(OLD) ->> '_v')::bigint + 1, t); END IF;
  INSERT INTO {outbox} (col, op, v, doc, old, at_ms) VALUES (TG_ARGV[0], lower(TG_OP), v, r, o, t / 1000);
  RETURN NULL;
END $sc$""",
        f"""CREATE OR REPLACE FUNCTION {s}."_sc_version"() RETURNS trigger LANGUAGE plpgsql AS $sc$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW._v IS NULL OR NEW._v <= 0 THEN NEW._v := {us}; END IF;
  ELSIF NEW._v IS NULL OR NEW._v <= OLD._v THEN
    NEW._v := GREATEST(OLD._v + 1, {us});
  END IF;
  RETURN NEW;
END $sc$""",
    ]


def pg_triggers(d: Dialect, schema: str, target: Target, name: str) -> list[str]:
    s = d.q(schema)
    out = [f"CREATE OR REPLACE TRIGGER {d.q(name)} AFTER INSERT OR UPDATE OR DELETE ON {target.sql} "
           f"FOR EACH ROW EXECUTE FUNCTION {s}.\"_sc_capture\"('{target.col}')"]
    if target.versioned:
        out.append(f"CREATE OR REPLACE TRIGGER \"_sc_version\" BEFORE INSERT OR UPDATE ON {target.sql} "
                   f"FOR EACH ROW EXECUTE FUNCTION {s}.\"_sc_version\"()")
    return out


def _row_json(d: Dialect, target: Target, row: str) -> str:
    """A JSON object of one row's columns (NEW or OLD), `_v` left out."""
    parts = []
    for c in target.columns:
        if c == VERSION_FIELD:
            continue
        ref = f"{row}.{d.q(c)}"
        if c in target.json_columns:
            ref = f"JSON_EXTRACT({ref}, '$')" if d.name == "mysql" else f"json({ref})"
        parts.append(f"'{c}', {ref}")
    return f"{'JSON_OBJECT' if d.name == 'mysql' else 'json_object'}({', '.join(parts)})"


def mysql_triggers(d: Dialect, outbox: str, target: Target, prefix: str, version_prefix: str) -> dict[str, str]:
    """Trigger name -> DDL (MySQL/MariaDB: one trigger per event, the body inline)."""
    us, ms = now_us(d), now_ms(d)
    v_new = f"NEW.{d.q(VERSION_FIELD)}" if target.versioned else us
    v_del = f"OLD.{d.q(VERSION_FIELD)} + 1" if target.versioned else us
    new, old = _row_json(d, target, "NEW"), _row_json(d, target, "OLD")
    ins = f"INSERT INTO {outbox} (col, op, v, doc, old, at_ms) VALUES ('{target.col}', "
    out = {
        f"{prefix}ai": f"AFTER INSERT ON {target.sql} FOR EACH ROW {ins}'insert', {v_new}, {new}, NULL, {ms})",
        f"{prefix}au": f"AFTER UPDATE ON {target.sql} FOR EACH ROW {ins}'update', {v_new}, {new}, {old}, {ms})",
        f"{prefix}ad": f"AFTER DELETE ON {target.sql} FOR EACH ROW {ins}'delete', {v_del}, NULL, {old}, {ms})",
    }
    if target.versioned:
        v = d.q(VERSION_FIELD)
        out[f"{version_prefix}bi"] = (f"BEFORE INSERT ON {target.sql} FOR EACH ROW BEGIN IF NEW.{v} IS NULL OR "
                                      f"NEW.{v} <= 0 THEN SET NEW.{v} = {us}; END IF; END")
        out[f"{version_prefix}bu"] = (f"BEFORE UPDATE ON {target.sql} FOR EACH ROW BEGIN IF NEW.{v} IS NULL OR "
                                      f"NEW.{v} <= OLD.{v} THEN SET NEW.{v} = GREATEST(OLD.{v} + 1, {us}); "
                                      "END IF; END")
    return {name: f"CREATE TRIGGER {d.q(name)} {body}" for name, body in out.items()}


def sqlite_triggers(d: Dialect, outbox: str, target: Target, prefix: str) -> dict[str, str]:
    """Trigger name -> DDL (SQLite). A write that did not raise `_v` is fixed right after it by an
    UPDATE of `_v` alone; the outbox row is written by the fixing trigger (with the true OLD row), and
    the UPDATE it makes is recognised (same collection, document and version as the outbox row just
    written) so it is not recorded a second time."""
    us, ms = now_us(d), now_ms(d)
    new, old = _row_json(d, target, "NEW"), _row_json(d, target, "OLD")
    t = target.sql
    cols = "(col, op, v, doc, old, at_ms)"
    ins = f"INSERT INTO {outbox} {cols} VALUES ('{target.col}', "
    if not target.versioned:
        bodies = {
            f"{prefix}ai": f"AFTER INSERT ON {t} BEGIN {ins}'insert', {us}, {new}, NULL, {ms}); END",
            f"{prefix}au": f"AFTER UPDATE ON {t} BEGIN {ins}'update', {us}, {new}, {old}, {ms}); END",
            f"{prefix}ad": f"AFTER DELETE ON {t} BEGIN {ins}'delete', {us}, NULL, {old}, {ms}); END",
        }
        return {name: f"CREATE TRIGGER {d.q(name)} {body}" for name, body in bodies.items()}
    v, i = d.q(VERSION_FIELD), d.q("id")
    fix = f"UPDATE {t} SET {v} = (SELECT v FROM {outbox} WHERE seq = last_insert_rowid()) WHERE {i} = NEW.{i};"
    echo = (f"EXISTS (SELECT 1 FROM {outbox} WHERE seq = last_insert_rowid() AND v = NEW.{v} AND "
            f"col = '{target.col}' AND json_extract(doc, '$.id') = NEW.{i})")
    bodies = {
        f"{prefix}ai": f"AFTER INSERT ON {t} WHEN NEW.{v} > 0 BEGIN {ins}'insert', NEW.{v}, {new}, NULL, {ms}); END",
        f"{prefix}ai0": (f"AFTER INSERT ON {t} WHEN NEW.{v} IS NULL OR NEW.{v} <= 0 BEGIN "
                         f"{ins}'insert', {us}, {new}, NULL, {ms}); {fix} END"),
        f"{prefix}au": (f"AFTER UPDATE ON {t} WHEN NEW.{v} > OLD.{v} AND NOT {echo} BEGIN "
                        f"{ins}'update', NEW.{v}, {new}, {old}, {ms}); END"),
        f"{prefix}au0": (f"AFTER UPDATE ON {t} WHEN NEW.{v} IS NULL OR NEW.{v} <= OLD.{v} BEGIN "
                         f"{ins}'update', max(OLD.{v} + 1, {us}), {new}, {old}, {ms}); {fix} END"),
        f"{prefix}ad": f"AFTER DELETE ON {t} BEGIN {ins}'delete', OLD.{v} + 1, NULL, {old}, {ms}); END",
    }
    return {name: f"CREATE TRIGGER {d.q(name)} {body}" for name, body in bodies.items()}
