"""Variable references in rules: ``args.doc[args.auth.id]``, ``utils.exists(args.find.x)``.

A small hand-written parser turns a reference into an immutable tree; resolution walks plain
dicts and lists only (no attribute access, no ``eval``). Names starting with ``__`` are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, TypeAlias


class Missing(Enum):
    """Marker for a variable that does not resolve (absent key, wrong container, bad index)."""

    MISSING = "missing"


MISSING = Missing.MISSING


class VariableSyntaxError(ValueError):
    """A string that claims to be a variable (``args.``/``utils.``) but does not parse."""


@dataclass(frozen=True)
class Path:
    """``args`` followed by segments; a segment is a name, a list index, or a nested path."""

    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Exists:
    """``utils.exists(<path>)``: true iff the path resolves to a value other than null."""

    path: Path


Segment: TypeAlias = str | int | Path
Ref: TypeAlias = Path | Exists

_NAME = re.compile(r"[A-Za-z0-9_$-]+")
_INT = re.compile(r"[0-9]+")
_QUOTED = re.compile(r"'([^'\\]*)'|\"([^\"\\]*)\"")
_EXISTS = "utils.exists("
_MAX_INDEX = 1_000_000


def looks_like_ref(value: object) -> bool:
    """True for strings that name a variable. Such strings are never used as literals."""
    return isinstance(value, str) and (value == "args" or value.startswith(("args.", "args[", "utils.")))


def _check_name(name: str, text: str) -> str:
    if name.startswith("__"):
        raise VariableSyntaxError(f"refused name {name!r} in variable {text!r}")
    return name


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> VariableSyntaxError:
        return VariableSyntaxError(f"{what} at position {self.pos} in variable {self.text!r}")

    def path(self) -> Path:
        if not self.text.startswith("args", self.pos):
            raise self.fail("expected 'args'")
        self.pos += 4
        segments: list[Segment] = []
        while self.pos < len(self.text) and self.text[self.pos] in ".[":
            if self.text[self.pos] == ".":
                self.pos += 1
                m = _NAME.match(self.text, self.pos)
                if m is None:
                    raise self.fail("expected a field name")
                self.pos = m.end()
                segments.append(_check_name(m.group(), self.text))
            else:
                self.pos += 1
                segments.append(self.bracket())
        return Path(tuple(segments))

    def bracket(self) -> Segment:
        key: Segment
        if (m := _INT.match(self.text, self.pos)) is not None:
            self.pos = m.end()
            key = int(m.group())
            if key > _MAX_INDEX:
                raise self.fail("index too large")
        elif (m := _QUOTED.match(self.text, self.pos)) is not None:
            self.pos = m.end()
            key = _check_name(m.group(1) if m.group(1) is not None else m.group(2), self.text)
        else:
            key = self.path()
        if not self.text.startswith("]", self.pos):
            raise self.fail("expected ']'")
        self.pos += 1
        return key


@lru_cache(maxsize=4096)
def parse(text: str) -> Ref:
    """Parse a variable reference; raise VariableSyntaxError if it is not one."""
    parser = _Parser(text)
    ref: Ref
    if text.startswith(_EXISTS):
        parser.pos = len(_EXISTS)
        ref = Exists(parser.path())
        if not text.startswith(")", parser.pos):
            raise parser.fail("expected ')'")
        parser.pos += 1
    elif text.startswith("utils."):
        raise VariableSyntaxError(f"unknown utility in {text!r} (only utils.exists(...) is known)")
    else:
        ref = parser.path()
    if parser.pos != len(text):
        raise parser.fail("unexpected character")
    return ref


def _step(container: Any, key: object) -> Any:
    if isinstance(container, dict):
        if isinstance(key, str) and not key.startswith("__") and key in container:
            return container[key]
        return MISSING
    if isinstance(container, list):
        index: int | None = None
        if isinstance(key, int) and not isinstance(key, bool):
            index = key
        elif isinstance(key, str) and _INT.fullmatch(key):
            index = int(key)
        if index is not None and 0 <= index < len(container):
            return container[index]
    return MISSING


def resolve_path(path: Path, args: dict[str, Any]) -> Any:
    """The value at ``path`` inside ``args`` (the root is ``args`` itself), or MISSING."""
    value: Any = args
    for segment in path.segments:
        key: object = segment
        if isinstance(segment, Path):
            key = resolve_path(segment, args)
            if key is MISSING:
                return MISSING
        value = _step(value, key)
        if value is MISSING:
            return MISSING
    return value


def resolve(ref: Ref, args: dict[str, Any]) -> Any:
    """The value of a parsed reference, or MISSING."""
    if isinstance(ref, Exists):
        found = resolve_path(ref.path, args)
        return found is not MISSING and found is not None
    return resolve_path(ref, args)


def operand(value: Any, args: dict[str, Any]) -> Any:
    """A rule field: a variable reference is resolved (maybe to MISSING), anything else is literal.

    Raises VariableSyntaxError for a malformed reference (never silently used as a literal).
    """
    if looks_like_ref(value):
        return resolve(parse(value), args)
    return value
