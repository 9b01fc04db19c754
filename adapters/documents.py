"""Plain-dict document helpers: dotted paths, projection and input validation."""

from __future__ import annotations

from typing import Any

from adapters.base import Doc
from adapters.limits import MAX_DOC_DEPTH, check_number
from adapters.names import check_field, check_key
from adapters.values import MISSING
from common.errors import InvalidQuery


def get_path(doc: Doc, parts: list[str]) -> Any:
    """Value at a dotted path, or MISSING if any segment is absent or not an object."""
    cur: Any = doc
    for part in parts:
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def set_path(doc: Doc, parts: list[str], value: Any) -> None:
    """Set a dotted path, creating intermediate objects (error if one is not an object)."""
    cur = doc
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part, MISSING)
        if nxt is MISSING:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise InvalidQuery(f"cannot create field {'.'.join(parts[: i + 2])!r}: {part!r} is not an object")
        cur = nxt
    cur[parts[-1]] = value


def unset_path(doc: Doc, parts: list[str]) -> Any:
    """Remove a dotted path if present; return the removed value or MISSING."""
    parent = get_path(doc, parts[:-1]) if len(parts) > 1 else doc
    if isinstance(parent, dict) and parts[-1] in parent:
        return parent.pop(parts[-1])
    return MISSING


def project(doc: Doc, select: dict[str, int] | None, id_field: str) -> Doc:
    """Apply a Mongo-style projection: all-1 (inclusion, id kept unless 0) or all-0 (exclusion)."""
    if not select:
        return doc
    include = [k for k, v in select.items() if v and k != id_field]
    others = [k for k in select if k != id_field]
    if include or (not others and select.get(id_field, 1)):
        out: Doc = {}
        if select.get(id_field, 1) and id_field in doc:
            out[id_field] = doc[id_field]
        for key in include:
            parts = key.split(".")
            value = get_path(doc, parts)
            if value is not MISSING:
                _put(out, parts, value)
        return out
    out = _deep_copy(doc)
    for key, v in select.items():
        if not v:
            unset_path(out, key.split("."))
    return out


def _put(out: Doc, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        out = out.setdefault(part, {})
    out[parts[-1]] = value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def copy_doc(doc: Doc) -> Doc:
    """Deep copy of a JSON document."""
    out: Doc = _deep_copy(doc)
    return out


def check_value(value: Any, where: str, level: int = 1) -> None:
    """Raise InvalidQuery unless `value` is a JSON value this system can store when an object or
    array at nesting `level` holds it (the document itself is level 1): numbers within 64 bits and
    finite, keys valid, nothing nested deeper than `MAX_DOC_DEPTH` (what every database can read back)."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int | float):
        check_number(value, where)
        return
    if isinstance(value, list | dict):
        if level >= MAX_DOC_DEPTH:
            raise InvalidQuery(f"{where} is nested deeper than {MAX_DOC_DEPTH} levels")
        if isinstance(value, dict):
            for key in value:
                check_key(key)
        for item in value.values() if isinstance(value, dict) else value:
            check_value(item, where, level + 1)
        return
    raise InvalidQuery(f"unsupported value of type {type(value).__name__} in {where}")


def check_doc(doc: object, id_field: str) -> Doc:
    """Validate a document to create: an object whose top-level keys are valid field names."""
    if not isinstance(doc, dict):
        raise InvalidQuery("a document must be a JSON object")
    for key, value in doc.items():
        parts = check_field(key)
        if len(parts) != 1:
            raise InvalidQuery(f"invalid field name {key!r} in document: no dots at the top level")
        check_value(value, f"field {key!r}")
    if (id_field in doc and not isinstance(doc[id_field], str | int)) or isinstance(doc.get(id_field), bool):
        raise InvalidQuery(f"{id_field} must be a string or an integer")
    return doc
