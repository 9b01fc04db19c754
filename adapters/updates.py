"""Update operators: validation and an in-memory applier with Mongo semantics.

SQL adapters apply updates with `apply_update` on rows locked inside the write
transaction, so every dialect and both storage modes behave exactly alike.
"""

from __future__ import annotations

import time
from typing import Any

from adapters.base import Doc
from adapters.documents import check_value, copy_doc, get_path, set_path, unset_path
from adapters.limits import MAX_FIELDS, check_count
from adapters.names import check_field, unknown
from adapters.values import MISSING, compare, is_number, iso_now
from common.errors import InvalidQuery

UPDATE_OPS = ("$set", "$inc", "$mul", "$min", "$max", "$unset", "$rename", "$push", "$currentDate")


def _check_push(field: str, value: Any, level: int) -> None:
    if isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value):
        if set(value) != {"$each"} or not isinstance(value["$each"], list):
            raise InvalidQuery(f"$push on {field!r}: only the $each modifier is supported")
        check_value(value["$each"], f"$push {field!r}", level)
    else:
        check_value(value, f"$push {field!r}", level + 1)


def _check_arg(op: str, field: str, value: Any, id_field: str | None) -> list[str]:
    targets = [field]
    level = field.count(".") + 1  # the nesting of the object that holds the value written at `field`
    if op in ("$inc", "$mul"):
        if not is_number(value):
            raise InvalidQuery(f"{op} on {field!r} needs a number")
        check_value(value, op)
    elif op == "$rename":
        if not isinstance(value, str):
            raise InvalidQuery(f"$rename of {field!r} needs the new field name as a string")
        check_field(value)
        if value == id_field:
            raise InvalidQuery(f"cannot $rename onto the id field {id_field!r}")
        targets.append(value)
    elif op == "$currentDate":
        if value is not True and value not in ({"$type": "date"}, {"$type": "timestamp"}):
            raise InvalidQuery(f"$currentDate on {field!r} needs true or {{\"$type\": \"date\"|\"timestamp\"}}")
    elif op == "$push":
        _check_push(field, value, level)
    elif op != "$unset":
        check_value(value, f"{op} {field!r}", level)
    return targets


def validate_update(update: Any, *, id_field: str | None = None) -> Doc:
    """Validate an update document; the id field and overlapping paths are refused."""
    if not isinstance(update, dict) or not update:
        raise InvalidQuery("update must be a non-empty object of update operators")
    seen: list[str] = []
    for op, fields in update.items():
        if op not in UPDATE_OPS:
            if isinstance(op, str) and not op.startswith("$"):
                raise InvalidQuery(f"update must use operators ($set, ...), found field {op!r}")
            raise unknown(str(op), "update")
        if not isinstance(fields, dict) or not fields:
            raise InvalidQuery(f"{op} needs a non-empty object")
        check_count(len(seen) + len(fields), MAX_FIELDS, "fields in one update")
        for field, value in fields.items():
            check_field(field)
            if id_field is not None and (field == id_field or field.startswith(id_field + ".")):
                raise InvalidQuery(f"the id field {id_field!r} cannot be updated")
            for target in _check_arg(op, field, value, id_field):
                for other in seen:
                    if target == other or target.startswith(other + ".") or other.startswith(target + "."):
                        raise InvalidQuery(f"conflicting update paths {other!r} and {target!r}")
                seen.append(target)
    return update


def current_date(spec: Any) -> Any:
    """Value written by $currentDate: an ISO-8601 string, or Unix ms for {"$type": "timestamp"}."""
    if spec == {"$type": "timestamp"}:
        return time.time_ns() // 1_000_000
    return iso_now()


def _number(op: str, field: str, old: Any) -> Any:
    if old is MISSING:
        return None
    if not is_number(old):
        raise InvalidQuery(f"cannot apply {op} to non-numeric field {field!r}")
    return old


def apply_update(doc: Doc, update: Doc) -> Doc:
    """Return a copy of `doc` with a validated update applied (Mongo semantics)."""
    out = copy_doc(doc)
    for op, fields in update.items():
        for field, arg in fields.items():
            parts = field.split(".")
            old = get_path(out, parts)
            if op == "$set":
                set_path(out, parts, copy_doc({"v": arg})["v"])
            elif op == "$unset":
                unset_path(out, parts)
            elif op == "$inc":
                base = _number(op, field, old)
                set_path(out, parts, arg if base is None else base + arg)
            elif op == "$mul":
                base = _number(op, field, old)
                set_path(out, parts, 0 * arg if base is None else base * arg)
            elif op in ("$min", "$max"):
                if old is MISSING or ((compare(arg, old) < 0) == (op == "$min") and compare(arg, old) != 0):
                    set_path(out, parts, arg)
            elif op == "$rename":
                if old is not MISSING:
                    unset_path(out, parts)
                    set_path(out, arg.split("."), old)
            elif op == "$push":
                items = arg["$each"] if isinstance(arg, dict) and "$each" in arg else [arg]
                if old is MISSING:
                    set_path(out, parts, list(items))
                elif not isinstance(old, list):
                    raise InvalidQuery(f"cannot $push to non-array field {field!r}")
                else:
                    old.extend(items)
            else:
                set_path(out, parts, current_date(arg))
    return out


def upsert_doc(find: Doc) -> Doc:
    """The document an upsert starts from: the equality parts of a (normalised) find."""
    doc: Doc = {}
    for key, cond in find.items():
        if key == "$and":
            for sub in cond:
                for k, v in upsert_doc(sub).items():
                    doc.setdefault(k, v)
        elif key != "$or" and "$eq" in cond:
            set_path(doc, key.split("."), cond["$eq"])
    return doc


def written_paths(update: Doc) -> list[str]:
    """Every document path a (validated) update writes, whatever the operator: `$rename` writes its
    source and its target. Rules use it to protect fields from every operator at once."""
    paths: list[str] = []
    for op, fields in update.items():
        if not isinstance(fields, dict):
            continue
        for field, value in fields.items():
            paths.append(str(field))
            if op == "$rename" and isinstance(value, str):
                paths.append(value)
    return paths


def overlaps(path: str, field: str) -> bool:
    """Does writing `path` change `field`? (the same, one inside the other: `a` and `a.b` overlap)."""
    return path == field or path.startswith(field + ".") or field.startswith(path + ".")
