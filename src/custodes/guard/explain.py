"""Explanations: why the guard blocked, redacted or held a request, proven from the ledger.

Every ``BLOCK``, ``REDACT`` and ``REVIEW`` verdict has an explanation id (``ex-`` and 32 hex
digits) recorded in its step's ledger entry. :func:`explain` finds that entry (searching from
the newest entry back, so recent decisions are found at once) and gives:

* the decision: step, action, trace id, caller ids, model, when it was recorded;
* each rule that decided it, its message and the controls it maps to (with their titles);
* each finding: the detector rule, severity, where (part and character span), a redacted
  preview where one is kept (never for personal data) and its keyed digest;
* the policy's name and SHA-256;
* the reviewer's decision, when the output was held for review;
* the RFC 9162 inclusion proof of the entry in the tree of the ledger's latest signed
  checkpoint, checked: the checkpoint's signature, the proof, and the leaf's hash.

An explanation is rebuilt from the ledger alone: the policy files need not be at hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from custodes.errors import Error, UsageError
from custodes.ledger import merkle
from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.log import InclusionProof, Ledger
from custodes.policy.controls import CONTROLS

__all__ = ["ExplainedRule", "Explanation", "ExplanationNotFound", "explain"]

EXPLANATION_ID: Final = re.compile(r"ex-[0-9a-f]{32}")
_CHUNK: Final = 1024
_REVIEW_SCAN: Final = 100_000  # entries searched after a held step for the reviewer's decision


class ExplanationNotFound(UsageError):
    """No step in the ledger has that explanation id."""


@dataclass(frozen=True)
class ExplainedRule:
    id: str
    action: str
    message: str | None
    controls: tuple[tuple[str, str], ...]  # (control id, title)


@dataclass(frozen=True)
class Explanation:
    """Why one step of one request was decided as it was, and the proof it is on record."""

    id: str
    trace_id: str
    step: str
    action: str
    recorded_at: str
    caller: dict[str, Any]
    model: str | None
    policy: dict[str, Any]
    rules: tuple[ExplainedRule, ...]
    findings: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]
    review: dict[str, Any] | None
    ledger_index: int
    leaf_hash: bytes
    proof: InclusionProof
    checkpoint: str
    verified: bool
    problem: str | None = None  # why the proof did not verify

    def as_json(self) -> dict[str, Any]:
        return {
            "explanation_id": self.id,
            "trace_id": self.trace_id,
            "step": self.step,
            "action": self.action,
            "recorded_at": self.recorded_at,
            "caller": self.caller,
            "model": self.model,
            "policy": self.policy,
            "rules": [
                {
                    "id": r.id,
                    "action": r.action,
                    "message": r.message,
                    "controls": [{"id": c, "title": t} for c, t in r.controls],
                }
                for r in self.rules
            ],
            "findings": list(self.findings),
            "notes": list(self.notes),
            "review": self.review,
            "ledger": {
                "index": self.ledger_index,
                "leaf_hash": self.leaf_hash.hex(),
                "proof": {
                    "size": self.proof.size,
                    "hashes": [h.hex() for h in self.proof.hashes],
                    "root": self.proof.root.hex(),
                },
                "checkpoint": self.checkpoint,
                "verified": self.verified,
                "problem": self.problem,
            },
        }

    def render(self) -> str:
        """The explanation for a person, one fact per line."""
        lines = [
            f"explanation {self.id}",
            f"  decision:   {self.action} at {self.step} (trace {self.trace_id}), "
            f"recorded {self.recorded_at}",
        ]
        who = " ".join(f"{k}={v}" for k, v in sorted(self.caller.items())) or "(not given)"
        lines.append(f"  caller:     {who}; model: {self.model or '(not given)'}")
        lines.append(
            f"  policy:     {self.policy.get('name')} sha256 {self.policy.get('sha256') or '(none)'}"
        )
        for rule in self.rules:
            lines.append(f"  rule:       {rule.id} ({rule.action})")
            if rule.message:
                lines.append(f"              {rule.message}")
            for control, title in rule.controls:
                lines.append(f"              control {control}: {title}")
        for f in self.findings:
            span = f.get("span") or ["?", "?"]
            shown = f.get("preview") or f"[REDACTED:{f.get('detector')}]"
            lines.append(
                f"  matched:    {f.get('detector')} ({f.get('severity')}) in {f.get('part')} "
                f"characters {span[0]}-{span[1]}: {shown}"
                + (" (passed with a policy token)" if f.get("bypassed") else "")
            )
        for note in self.notes:
            lines.append(f"  note:       {note}")
        if self.review is not None:
            r = self.review
            if r.get("state") in (None, "pending"):
                lines.append(f"  review:     item {r.get('review_id')} pending")
            else:
                lines.append(
                    f"  review:     item {r.get('review_id')} {r.get('state')} by "
                    f"{r.get('reviewer') or 'nobody'} at {r.get('decided_at')}: "
                    f"{r.get('decision_reason')}"
                )
        status = "verified" if self.verified else f"NOT VERIFIED ({self.problem})"
        lines.append(
            f"  ledger:     entry {self.ledger_index} (leaf {self.leaf_hash.hex()}) is in the "
            f"signed tree of {self.proof.size} entries, root {self.proof.root.hex()}: {status}"
        )
        for number, digest in enumerate(self.proof.hashes):
            lines.append(f"  proof {number:2d}:   {digest.hex()}")
        return "\n".join(lines)


def explain(ledger: Ledger, explanation_id: str) -> Explanation:
    """The explanation of ``explanation_id`` from ``ledger``, with its proof checked."""
    wanted = explanation_id.strip() if isinstance(explanation_id, str) else ""
    if not EXPLANATION_ID.fullmatch(wanted):
        raise UsageError(
            f"{str(explanation_id)[:80]!r} is not an explanation id",
            hint="explanation ids look like ex- and 32 hex digits, as a guard verdict gives them",
        )
    index, leaf, leaf_hash = _find(ledger, wanted)
    entry: dict[str, Any] = json.loads(leaf)
    review = _review(ledger, entry, index)
    proof, checkpoint, problem = _prove(ledger, index, leaf, leaf_hash)
    rules = tuple(
        ExplainedRule(
            id=str(r.get("id")),
            action=str(r.get("action")),
            message=r.get("message"),
            controls=tuple((c, CONTROLS.get(c, "(unknown control)")) for c in r.get("controls", [])),
        )
        for r in entry.get("rules", [])
        if isinstance(r, dict)
    )
    return Explanation(
        id=wanted,
        trace_id=str(entry.get("trace_id")),
        step=str(entry.get("step")),
        action=str(entry.get("action")),
        recorded_at=str(entry.get("recorded_at")),
        caller=dict(entry.get("caller") or {}),
        model=entry.get("model"),
        policy=dict(entry.get("policy") or {}),
        rules=rules,
        findings=tuple(f for f in entry.get("findings", []) if isinstance(f, dict)),
        notes=tuple(str(n) for n in entry.get("notes", [])),
        review=review,
        ledger_index=index,
        leaf_hash=leaf_hash,
        proof=proof,
        checkpoint=checkpoint,
        verified=problem is None,
        problem=problem,
    )


def _find(ledger: Ledger, explanation_id: str) -> tuple[int, bytes, bytes]:
    """The newest entry recording ``explanation_id`` as its own (not a later reference)."""
    needle = f'"explanation_id":"{explanation_id}"'.encode()
    with ledger.snapshot() as reader:
        end = reader.size()
        while end > 0:
            start = max(0, end - _CHUNK)
            found: tuple[int, bytes, bytes] | None = None
            for index, leaf, leaf_hash in reader.entries(start):
                if index >= end:
                    break
                if needle in leaf:
                    found = (index, bytes(leaf), bytes(leaf_hash))
            if found is not None:
                return found
            end = start
    raise ExplanationNotFound(
        f"no decision in {ledger.url} has the explanation id {explanation_id}",
        hint="check the id and that --ledger names the ledger the guard records to",
    )


def _review(ledger: Ledger, entry: dict[str, Any], index: int) -> dict[str, Any] | None:
    review_id = entry.get("review_id")
    if not review_id:
        return None
    needle = f'"review_id":"{review_id}"'.encode()
    decided: dict[str, Any] | None = None
    with ledger.snapshot() as reader:
        for number, (_, leaf, _) in enumerate(reader.entries(index + 1)):
            if number >= _REVIEW_SCAN:
                break
            if needle in leaf and b'"step":"review"' in leaf:
                decided = json.loads(leaf)
    if decided is None:
        return {"review_id": review_id, "state": "pending"}
    keep = ("review_id", "state", "reviewer", "decision_reason", "decided_at", "index")
    return {k: decided.get(k) for k in keep}


def _prove(
    ledger: Ledger, index: int, leaf: bytes, leaf_hash: bytes
) -> tuple[InclusionProof, str, str | None]:
    """The entry's inclusion proof in the latest signed tree, and what fails, if anything."""
    checkpoint = ledger.checkpoint()
    try:
        signed = Checkpoint.open(checkpoint, ledger.verifier)
    except Error as exc:
        proof = ledger.prove(index)
        return proof, checkpoint, f"the latest checkpoint does not verify: {exc.message}"
    proof = ledger.prove(index, signed.size)
    if merkle.hash_leaf(leaf) != leaf_hash or proof.leaf_hash != leaf_hash:
        return proof, checkpoint, "the entry's leaf hash does not match its bytes"
    if proof.root != signed.root:
        return proof, checkpoint, "the tree's root differs from the signed checkpoint's"
    if not proof.verify():
        return proof, checkpoint, "the inclusion proof does not verify"
    return proof, checkpoint, None
