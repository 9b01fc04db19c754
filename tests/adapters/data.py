"""Shared test documents (fit the typed SCHEMA in conftest)."""

from __future__ import annotations

from adapters.base import Doc

PEOPLE: list[Doc] = [
    {"id": "a", "name": "Ann", "age": 31, "score": 7.5, "active": True, "tags": ["x", "y"],
     "meta": {"city": "Oslo", "zip": 100}, "userId": "u1"},
    {"id": "b", "name": "Bob", "age": 25, "score": 3.0, "active": False, "tags": ["y"],
     "meta": {"city": "Rome", "zip": 200}, "userId": "u1"},
    {"id": "c", "name": "Cid", "age": 40, "score": 9.25, "active": True, "meta": {"city": "Oslo"}, "userId": "u2"},
    {"id": "d", "name": "dan", "age": 18, "userId": "u2"},
]
