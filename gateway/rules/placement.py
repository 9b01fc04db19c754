"""Where rules live in the Space Cloud config (spec §5.3). Lookups only; nothing is evaluated here."""

from __future__ import annotations

from typing import Any

DEFAULT = "default"


def _child(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _as_rule(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def crud_rule(crud_db_config: dict[str, Any], col: str, op: str) -> dict[str, Any] | None:
    """The rule for ``op`` on ``col`` in one ``modules.crud.<db>`` block.

    ``collections.<col>.rules.<op>``; ``collections.default.rules.<op>`` is used only when
    ``<col>`` is absent from ``collections`` entirely (a listed collection without a rule for
    ``op`` has no rule, exactly as in Space Cloud). None means "no rule" (deny).
    """
    collections = _child(crud_db_config, "collections")
    if not isinstance(collections, dict):
        return None
    entry = collections[col] if col in collections else collections.get(DEFAULT)
    return _as_rule(_child(_child(entry, "rules"), op))


def _v12_rule(services: dict[str, Any], service: str, func: str) -> dict[str, Any] | None:
    # Mirrors SC@v0.12.0 getFunctionRule: a service that is listed with a `functions` map never
    # falls back to the default service; one that is absent (or has no functions) does.
    stub = services.get(service)
    functions = _child(stub, "functions")
    if not isinstance(functions, dict):
        functions = _child(services.get(DEFAULT), "functions")
        if not isinstance(functions, dict):
            return None
    for name in (func, DEFAULT):
        rule = _as_rule(_child(functions.get(name), "rule"))
        if rule is not None:
            return rule
    return None


def function_rule(functions_config: dict[str, Any], service: str, func: str) -> dict[str, Any] | None:
    """The rule for calling ``service.func`` in the ``modules.functions`` block.

    v0.11/12 shape (``services`` key): ``services.<svc>.functions.<fn>.rule``, then
    ``services.<svc>.functions.default.rule``; if ``<svc>`` is absent, the same two lookups in
    ``services.default``. v0.9/10 shape (``rules`` key): ``rules.<svc>.<fn>``, no default.
    None means "no rule" (deny).
    """
    if not isinstance(functions_config, dict):
        return None
    services = functions_config.get("services")
    if isinstance(services, dict):
        return _v12_rule(services, service, func)
    return _as_rule(_child(_child(functions_config.get("rules"), service), func))
