"""Policy: the organisation's rules, loaded from YAML packs and identified by their SHA-256.

A policy says which checks run (secrets, provenance, regular expressions, Python and
JavaScript/TypeScript call rules, release-artifact rules), with what severity, on which paths,
and which controls (``owasp-llm:LLM05``, ``eu-ai-act:art15``) each implements.
:func:`load_policy` reads built-in packs (:data:`PACKS`) and files, validates them with clear
``FILE:LINE`` errors (:class:`PolicyError`) and returns a frozen :class:`Policy`.
"""

from __future__ import annotations

from custodes.policy.controls import CONTROLS
from custodes.policy.loader import DEFAULT_PACKS, PACKS, PolicyError, Problem, load_policy
from custodes.policy.model import Policy, Rule

__all__ = [
    "CONTROLS",
    "DEFAULT_PACKS",
    "PACKS",
    "Policy",
    "PolicyError",
    "Problem",
    "Rule",
    "load_policy",
]
