"""Helpers of the policy tests: one rule of a pack run alone over a subject."""

from __future__ import annotations

import random
import string
from dataclasses import replace

from custodes.detectors.rules import PolicyDetector
from custodes.findings import Finding
from custodes.policy import Policy, load_policy
from custodes.sources.languages import language_of
from custodes.subject import Subject, SubjectKind

PACKS = load_policy(["enterprise", "owasp-llm"])
B32 = string.ascii_uppercase + "234567"
B64URL = string.ascii_letters + string.digits + "-_"


def rule(rule_id: str) -> Policy:
    """A policy of just ``rule_id`` of the built-in packs."""
    (found,) = [r for r in PACKS.rules if r.id == rule_id]
    return replace(PACKS, rules=(found,))


def subject(path: str, text: str, kind: SubjectKind = SubjectKind.FILE) -> Subject:
    return Subject(path=path, text=text, kind=kind, language=language_of(path))


def scan(policy: Policy, path: str, text: str, kind: SubjectKind = SubjectKind.FILE) -> list[Finding]:
    return list(PolicyDetector(policy).scan(subject(path, text, kind)))


def aws_key(seed: int) -> str:
    """Format-valid but fake: AKIA and 16 base32 characters from a seeded RNG."""
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


def openai_key(seed: int) -> str:
    """An OpenAI project key's shape (with the 'T3BlbkFJ' marker), random, fake."""
    rng = random.Random(seed)
    part = lambda: "".join(rng.choice(B64URL) for _ in range(74))  # noqa: E731
    return "sk-proj-" + part() + "T3BlbkFJ" + part()


def pem_body(seed: int, lines: int = 12) -> str:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "+/"
    return "\n".join("".join(rng.choice(alphabet) for _ in range(64)) for _ in range(lines))
