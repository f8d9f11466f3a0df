"""Conditions on rules, written in CEL (the Common Expression Language).

CEL is what Kubernetes admission policies use: small, side-effect free, always terminating. A
rule's ``when`` names the variables of the door that evaluates it; the code gate offers
``path``, ``language`` and ``kind``, the guard door adds the caller's identity, role, purpose
and model. A condition is compiled and checked once, when the policy loads, so a typo fails the
load with its line rather than the scan half-way through.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CALLER_FIELDS",
    "CODE_VARIABLES",
    "GUARD_VARIABLES",
    "Condition",
    "ConditionError",
    "compile_condition",
]

_log = logging.getLogger(__name__)

CODE_VARIABLES: Final[Mapping[str, object]] = {"path": "", "language": "", "kind": "file"}
"""The code gate's variables, each with a sample value of its type (``language`` is "" when
unknown)."""

CALLER_FIELDS: Final = ("id", "role", "purpose", "tenant")
"""What a guard condition knows of the caller, as ``caller.id``, ``caller.role`` …"""

GUARD_VARIABLES: Final[Mapping[str, object]] = {
    "caller": dict.fromkeys(CALLER_FIELDS, ""),
    "model": "",
    "stage": "prompt",
}
"""The guard door's variables: the caller (each field "" when not given), the model asked
for ("" when not given), and the stage, ``prompt`` (admission) or ``completion``
(validation)."""

# Names bound by CEL's comprehension macros (``paths.exists(p, …)``) are reported as variables
# by the parser, but are no variables of the door.
_MACRO_BOUND: Final = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")


_PARSE_ERROR: Final = re.compile(r"<input>:(?P<line>\d+):(?P<column>\d+): (?P<what>[^\n]*)")


def _parse_error(message: str) -> str:
    """CEL's parse error, short: where and what, without the list of expected tokens."""
    found = _PARSE_ERROR.search(message)
    if found is None:
        return message.split("\n", 1)[0]
    what = re.sub(r" expecting \{.*\}$| expecting .*$", "", found["what"])
    return f"{what} at column {found['column']}"


class ConditionError(ValueError):
    """A condition that does not compile, names an unknown variable or is not a boolean."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any = field(repr=False, compare=False)

    def holds(self, variables: Mapping[str, object]) -> bool:
        """Whether the condition is true; an evaluation error counts as true (fail closed)."""
        try:
            result = self.program.execute(dict(variables))
        except Exception as exc:  # the CEL runtime raises ValueError, TypeError, RuntimeError
            _log.warning("condition %r failed (%s); the rule applies", self.source, exc)
            return True
        return result is True


def compile_condition(
    source: str, variables: Mapping[str, object] = CODE_VARIABLES
) -> Condition:
    """Compile ``source``, checking it reads only ``variables`` and yields a boolean."""
    try:
        import cel
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConditionError(
            "conditions need the common-expression-language package; pip install it"
        ) from exc
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionError(f"the condition does not parse: {_parse_error(str(exc))}") from exc
    bound = set(_MACRO_BOUND.findall(source))
    unknown = sorted(set(program.variables()) - set(variables) - bound)
    if unknown:
        raise ConditionError(
            f"the condition uses unknown variable(s) {', '.join(map(repr, unknown))}; "
            f"a condition here can use {', '.join(variables)}"
        )
    try:
        sample = program.execute(dict(variables))
    except Exception:
        # Only some inputs make it fail (an index past the end): not a fault of the condition.
        return Condition(source, program)
    if not isinstance(sample, bool):
        raise ConditionError(
            f"the condition yields {type(sample).__name__}, not a boolean; "
            "compare it, e.g. path.startsWith(\"src/\")"
        )
    return Condition(source, program)
