"""The query model shared by every backend and by the realtime matcher.

`validate_*` check (and normalise: `$neq` becomes `$ne`, `$count` becomes `$sum: 1`)
a find, an update or an aggregation pipeline, raising `InvalidQuery` that names the
bad operator or field. `matches` evaluates a find in memory with exactly the
semantics of the SQL compiler and of Mongo for the supported subset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.base import Doc
from adapters.documents import get_path
from adapters.limits import (
    MAX_FIELDS,
    MAX_IN,
    MAX_NESTING,
    MAX_SORT_KEYS,
    MAX_STAGES,
    FindBudget,
    check_count,
    check_number,
    check_skip_limit,
)
from adapters.names import check_field, unknown
from adapters.updates import validate_update
from adapters.values import MISSING, compare, equal, type_class
from common.errors import InvalidQuery

__all__ = ["matcher", "matches", "validate_find", "validate_options", "validate_pipeline", "validate_update"]

COMPARISONS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"}
RANGES = {"$gt", "$gte", "$lt", "$lte"}
STAGES = {"$match", "$group", "$sort", "$skip", "$limit", "$project"}
ACCUMULATORS = {"$sum", "$avg", "$min", "$max", "$count"}


def _scalar(value: Any, field: str, op: str) -> None:
    if not (value is None or isinstance(value, bool | int | float | str)):
        raise InvalidQuery(f"{op} on {field!r} needs a string, number, boolean or null")
    if isinstance(value, float) and value != value:
        raise InvalidQuery(f"{op} on {field!r}: NaN is not comparable")
    check_number(value, f"{op} on {field!r}")


def _conditions(field: str, value: Any, budget: FindBudget) -> dict[str, Any]:
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise InvalidQuery(f"comparing {field!r} with an array is not supported (use $in)")
        _scalar(value, field, "equality")
        budget.condition()
        return {"$eq": value}
    if not value:
        raise InvalidQuery(f"empty condition for {field!r}")
    budget.condition(len(value))
    out: dict[str, Any] = {}
    for op, arg in value.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise InvalidQuery(f"comparing {field!r} with an object is not supported (use dotted paths)")
        op = "$ne" if op == "$neq" else op
        if op not in COMPARISONS:
            raise unknown(op, "find")
        if op in ("$in", "$nin"):
            if not isinstance(arg, list) or len(arg) > MAX_IN:
                raise InvalidQuery(f"{op} on {field!r} needs an array (at most {MAX_IN} values)")
            budget.in_values(len(arg))
            for item in arg:
                _scalar(item, field, op)
        elif op in RANGES:
            if isinstance(arg, bool) or not isinstance(arg, int | float | str):
                raise InvalidQuery(f"{op} on {field!r} needs a number or a string")
            _scalar(arg, field, op)
        else:
            _scalar(arg, field, op)
        out[op] = arg
    return out


def validate_find(find: Any) -> Doc:
    """Validate a find; return it normalised (every field maps to an operator dict). Its size is
    bounded (`adapters.limits`): conditions, `$in` values, `$or`/`$and` nesting."""
    return _validate_find(find, 0, FindBudget())


def _validate_find(find: Any, depth: int, budget: FindBudget) -> Doc:
    if find is None:
        return {}
    if not isinstance(find, dict):
        raise InvalidQuery("find must be an object")
    if depth > MAX_NESTING:
        raise InvalidQuery(f"find is nested too deeply (at most {MAX_NESTING} levels of $or/$and)")
    out: Doc = {}
    for key, value in find.items():
        if isinstance(key, str) and key.startswith("$"):
            if key not in ("$or", "$and"):
                raise unknown(key, "find")
            if not isinstance(value, list) or not value:
                raise InvalidQuery(f"{key} needs a non-empty array of conditions")
            budget.condition(len(value))
            out[key] = [_validate_find(sub, depth + 1, budget) for sub in value]
        else:
            check_field(key)
            out[key] = _conditions(key, value, budget)
    return out


def _condition_holds(op: str, arg: Any, value: Any) -> bool:
    if op == "$eq":
        return (value is MISSING and arg is None) or (value is not MISSING and equal(value, arg))
    if op == "$ne":
        return not _condition_holds("$eq", arg, value)
    if op == "$in":
        return any(_condition_holds("$eq", a, value) for a in arg)
    if op == "$nin":
        return not _condition_holds("$in", arg, value)
    if value is MISSING or type_class(value) != type_class(arg):
        return False
    c = compare(value, arg)
    return {"$gt": c > 0, "$gte": c >= 0, "$lt": c < 0, "$lte": c <= 0}[op]


def _matches(find: Doc, doc: Doc) -> bool:
    for key, cond in find.items():
        if key == "$or":
            if not any(_matches(sub, doc) for sub in cond):
                return False
        elif key == "$and":
            if not all(_matches(sub, doc) for sub in cond):
                return False
        else:
            value = get_path(doc, key.split("."))
            if not all(_condition_holds(op, arg, value) for op, arg in cond.items()):
                return False
    return True


def matches(find: Doc, doc: Doc) -> bool:
    """True if `doc` satisfies `find` (validated here; raises InvalidQuery if it is malformed)."""
    return _matches(validate_find(find), doc)


def matcher(find: Doc) -> Callable[[Doc], bool]:
    """`matches` for one find and many documents: the find is validated once, here."""
    valid = validate_find(find)
    return lambda doc: _matches(valid, doc)


def validate_options(
    select: Any, sort: Any, skip: Any, limit: Any, distinct: Any, *, id_field: str
) -> None:
    """Validate read options: select all-1 or all-0 (id may differ), sort 1/-1, skip/limit >= 0."""
    if select:
        if not isinstance(select, dict):
            raise InvalidQuery("select must be an object")
        check_count(len(select), MAX_FIELDS, "fields in select")
        for key, v in select.items():
            check_field(key)
            if v not in (0, 1):
                raise InvalidQuery(f"select value for {key!r} must be 0 or 1")
        if len({bool(v) for k, v in select.items() if k != id_field}) > 1:
            raise InvalidQuery("select cannot mix inclusion and exclusion")
    validate_sort(sort)
    for name, n in (("skip", skip), ("limit", limit)):
        if n is not None:
            check_skip_limit(name, n)
    if distinct is not None:
        check_field(distinct)


def validate_sort(sort: Any) -> None:
    """A sort is an object of field -> 1 | -1."""
    if not sort:
        return
    if not isinstance(sort, dict):
        raise InvalidQuery("sort must be an object")
    check_count(len(sort), MAX_SORT_KEYS, "sort fields")
    for key, v in sort.items():
        check_field(key)
        if isinstance(v, bool) or v not in (1, -1):
            raise InvalidQuery(f"sort value for {key!r} must be 1 or -1")


def _field_ref(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        raise InvalidQuery(f"{where} needs a field reference like \"$amount\"")
    check_field(value[1:])
    return value


def _validate_group(spec: Any) -> Doc:
    if not isinstance(spec, dict) or "_id" not in spec:
        raise InvalidQuery("$group needs an object with an _id")
    key = spec["_id"]
    check_count(len(spec) - 1, MAX_FIELDS, "$group outputs")
    if isinstance(key, dict):
        if not key:
            raise InvalidQuery("$group _id object is empty")
        check_count(len(key), MAX_FIELDS, "$group _id fields")
        for name, ref in key.items():
            check_field(name)
            _field_ref(ref, "$group _id")
    elif key is not None:
        _field_ref(key, "$group _id")
    out: Doc = {"_id": key}
    for name, acc in spec.items():
        if name == "_id":
            continue
        if len(check_field(name)) != 1:
            raise InvalidQuery(f"$group output field {name!r} may not contain dots")
        if not isinstance(acc, dict) or len(acc) != 1:
            raise InvalidQuery(f"$group field {name!r} needs one accumulator")
        (op, arg), = acc.items()
        if op not in ACCUMULATORS:
            raise unknown(op, "$group")
        if op == "$count":
            if arg != {}:
                raise InvalidQuery("$count takes {}")
            out[name] = {"$sum": 1}
        elif op == "$sum" and not isinstance(arg, str):
            if isinstance(arg, bool) or not isinstance(arg, int | float):
                raise InvalidQuery("$sum needs a number or a field reference")
            check_number(arg, "$sum")
            out[name] = {"$sum": arg}
        else:
            out[name] = {op: _field_ref(arg, op)}
    return out


def validate_pipeline(pipe: Any, *, id_field: str = "_id") -> list[Doc]:
    """Validate an aggregation pipeline; stages other than $match $group $sort $skip $limit
    $project (and every operator outside the supported set) raise InvalidQuery.
    `id_field` (besides `_id`) may be excluded in an inclusion $project."""
    if not isinstance(pipe, list):
        raise InvalidQuery("pipe must be an array of stages")
    check_count(len(pipe), MAX_STAGES, "pipeline stages")
    out: list[Doc] = []
    for stage in pipe:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise InvalidQuery("each pipeline stage must be an object with exactly one key")
        (name, arg), = stage.items()
        if name not in STAGES:
            raise unknown(str(name), "pipeline")
        if name == "$match":
            out.append({name: validate_find(arg)})
        elif name == "$group":
            out.append({name: _validate_group(arg)})
        elif name == "$sort":
            if not arg:
                raise InvalidQuery("$sort needs at least one field")
            validate_sort(arg)
            out.append({name: arg})
        elif name in ("$skip", "$limit"):
            check_skip_limit(name, arg, least=1 if name == "$limit" else 0)
            out.append({name: arg})
        else:
            if not isinstance(arg, dict) or not arg:
                raise InvalidQuery("$project needs an object")
            check_count(len(arg), MAX_FIELDS, "$project fields")
            for key, v in arg.items():
                check_field(key)
                if isinstance(v, bool) or v not in (0, 1):
                    raise InvalidQuery(f"$project value for {key!r} must be 0 or 1")
            if len({bool(v) for k, v in arg.items() if k not in ("_id", id_field)}) > 1:
                raise InvalidQuery("$project cannot mix inclusion and exclusion")
            out.append({name: arg})
    return out
