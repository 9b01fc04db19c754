"""Security rules (Space Cloud §5): a pure engine; the gateway injects I/O through RuleContext."""

from gateway.rules.engine import Decision, evaluate
from gateway.rules.frame import NO_RULE, RuleContext
from gateway.rules.placement import crud_rule, function_rule
from gateway.rules.validate import validate_rule

__all__ = ["NO_RULE", "Decision", "RuleContext", "crud_rule", "evaluate", "function_rule", "validate_rule"]
