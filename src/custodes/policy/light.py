"""A pydantic-free reading of the simplest policies: provenance rules and nothing else.

Importing pydantic and building the schema models of :mod:`custodes.policy.schema` costs a
scan about 0.1 s of start-up CPU, more than the rest of loading a small policy. A policy whose
rules only run the provenance check (the benchmark's, a team's "copied code" gate) is read here
instead, by a structural check that accepts a strict subset of what the schema accepts and
gives the very same values. Anything outside that subset (another detector, another key, a
value of an unexpected type, anything the schema would report) returns ``None`` and the loader
falls back to the schema: every error message still comes from one place, and validation is
never weaker. Tests pin this reading against :class:`~custodes.policy.schema.PolicyModel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from custodes.findings import Severity

__all__ = ["LightPolicy", "LightProvenance", "LightRule", "read_light"]

# Mirrors schema._RULE_ID: the schema stays the reference, a test pins the two together.
_RULE_ID: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_SEVERITIES: Final = {severity.value: severity for severity in Severity}
_POLICY_KEYS: Final = frozenset({"schema", "name", "description", "rules"})
_RULE_KEYS: Final = frozenset({"id", "message", "severity", "provenance"})
_PROVENANCE_KEYS: Final = frozenset({"collections", "min-similarity"})


@dataclass(frozen=True)
class LightProvenance:
    """What :class:`~custodes.policy.schema.ProvenanceModel` would hold."""

    collections: list[str]
    min_similarity: float | None


@dataclass(frozen=True)
class LightRule:
    """A provenance rule with the attributes of :class:`~custodes.policy.schema.RuleModel`
    that the loader reads (the other detectors and selectors are absent)."""

    id: str
    message: str
    severity: Severity | None
    provenance: LightProvenance
    controls: tuple[str, ...] = ()
    applies_to: tuple[str, ...] = ("code",)
    action: None = None
    bypass_with_token: bool = False
    paths: None = None
    languages: None = None
    kinds: None = None
    when: None = None
    regex: None = None
    phrases: None = None
    python: None = None
    javascript: None = None
    artifact: None = None
    secrets: None = None
    pii: None = None
    injection: None = None
    detector: str = "provenance"


@dataclass(frozen=True)
class LightPolicy:
    name: str | None
    rules: list[LightRule]


def read_light(data: dict[Any, Any]) -> LightPolicy | None:
    """The policy ``data`` if it is made of plain provenance rules the schema accepts as they
    are; ``None`` for anything else (the schema then decides, and words any error)."""
    if not _POLICY_KEYS.issuperset(data):
        return None
    schema = data.get("schema", 1)
    if type(schema) is not int or schema != 1:
        return None
    name = data.get("name")
    if name is not None and (type(name) is not str or not name):
        return None
    description = data.get("description")
    if description is not None and type(description) is not str:
        return None
    rules = data.get("rules")
    if type(rules) is not list or not rules:
        return None
    read: list[LightRule] = []
    for rule in rules:
        light = _rule(rule)
        if light is None:
            return None
        read.append(light)
    return LightPolicy(name=name, rules=read)


def _rule(rule: Any) -> LightRule | None:
    if type(rule) is not dict or not _RULE_KEYS.issuperset(rule):
        return None
    rule_id, message = rule.get("id"), rule.get("message")
    if type(rule_id) is not str or not _RULE_ID.match(rule_id):
        return None
    if type(message) is not str or not message:
        return None
    severity: Severity | None = None
    if "severity" in rule:
        given = rule["severity"]
        if given is not None:
            if type(given) is not str or given not in _SEVERITIES:
                return None
            severity = _SEVERITIES[given]
    provenance = rule.get("provenance")
    if type(provenance) is not dict or not _PROVENANCE_KEYS.issuperset(provenance):
        return None
    collections = provenance.get("collections", ["deny"])
    if type(collections) is str:
        collections = [collections]  # the schema reads one string as a list of one
    if type(collections) is not list or not all(_name_glob(c) for c in collections):
        return None
    similarity = provenance.get("min-similarity")
    if similarity is not None:
        # bool is an int to Python, not a number to the schema; NaN fails both comparisons.
        if type(similarity) not in (int, float) or not 0.0 <= similarity <= 1.0:
            return None
        similarity = float(similarity)
    return LightRule(
        id=rule_id,
        message=message,
        severity=severity,
        provenance=LightProvenance(collections=list(collections), min_similarity=similarity),
    )


def _name_glob(pattern: Any) -> bool:
    return type(pattern) is str and bool(pattern) and pattern == pattern.strip()
