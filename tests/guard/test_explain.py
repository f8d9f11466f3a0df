"""Explanations rebuilt from the ledger: the rule, the redacted match, the controls, the proof.

The proof is checked again here with the RFC 9162 reference of the test suite, against the
signed checkpoint read from the database with the plain driver.
"""

from __future__ import annotations

import random
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.errors import UsageError
from custodes.guard import Caller, ExplanationNotFound, Guard, ReviewQueue
from custodes.ledger import Ledger
from ledgertools import leaf_hash, mth, parse_checkpoint, path, raw_rows

B32 = string.ascii_uppercase + "234567"
AUTH_CODE = "def login(user, password):\n    return bcrypt.checkpw(password, user.hash)\n"


def aws_key(seed: int) -> str:
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def guard(db: Path) -> Iterator[Guard]:
    with Guard("enterprise", db) as g:
        yield g


def test_a_block_is_explained_with_rule_controls_policy_and_a_verified_proof(
    guard: Guard, db: Path
) -> None:
    key = aws_key(11)
    verdict = guard.check_prompt(f"token {key}", caller=Caller(id="svc-a"), model="m1")
    guard.check_prompt("something later")  # the tree grows past the entry
    assert verdict.explanation_id is not None
    found = guard.explain(verdict.explanation_id)
    assert found.id == verdict.explanation_id
    assert found.trace_id == verdict.trace_id
    assert (found.step, found.action) == ("admission", "block")
    assert found.caller == {"id": "svc-a"}
    assert found.model == "m1"
    assert guard.policy is not None
    assert found.policy == {"name": "enterprise", "sha256": guard.policy.sha256}
    (rule,) = found.rules
    assert rule.id == "enterprise.prompt-secrets"
    assert dict(rule.controls) == {
        "owasp-llm:LLM02": "Sensitive Information Disclosure",
        "eu-ai-act:art15": "Accuracy, robustness and cybersecurity",
        "nist-ai-rmf:MEASURE-2.7": "Security and resilience",
    }
    (finding,) = found.findings
    assert finding["detector"] == "secret.aws-access-key-id"
    assert finding["span"] == [6, 6 + len(key)]
    assert finding["preview"].startswith("AKIA")
    assert key not in finding["preview"]
    assert found.ledger_index == verdict.ledger_index
    assert found.verified
    assert found.problem is None
    # Check the proof independently: the checkpoint as stored, the leaf as stored.
    rows, size, note = raw_rows(str(db))
    assert note is not None
    assert note == found.checkpoint
    checkpoint = parse_checkpoint(note)
    hashes = [leaf_hash(leaf) for _, leaf, _ in rows][: checkpoint.size]
    assert found.proof.size == checkpoint.size == size == 2
    assert found.proof.root == checkpoint.root == mth(hashes)
    assert list(found.proof.hashes) == path(found.ledger_index, hashes)
    assert found.leaf_hash == hashes[found.ledger_index]
    text = found.render()
    assert "enterprise.prompt-secrets" in text
    assert "owasp-llm:LLM02" in text
    assert guard.policy.sha256 in text
    assert "verified" in text
    assert key not in text


def test_a_redaction_of_personal_data_shows_no_part_of_it(guard: Guard) -> None:
    verdict = guard.check_prompt("reach me at jane.roe@acme-corp.de")
    assert verdict.explanation_id is not None
    found = guard.explain(verdict.explanation_id)
    assert found.action == "redact"
    assert [f["detector"] for f in found.findings] == ["pii.email"]
    assert "preview" not in found.findings[0]
    text = found.render()
    assert "[REDACTED:pii.email]" in text
    assert "acme-corp" not in text
    assert "jane" not in text


def test_a_review_is_explained_with_the_reviewers_decision(db: Path) -> None:
    with Guard("enterprise", db, review_timeout=30) as guard:
        assert guard.review_queue is not None
        url = guard.review_queue.url

        def approve() -> None:
            with ReviewQueue.open(url) as queue:
                for _ in range(1500):
                    page = queue.list(state="pending")
                    if page.items:
                        queue.decide(page.items[0].id, "approve", reviewer="carol",
                                     reason="uses the approved library")  # fmt: skip
                        return
                    time.sleep(0.02)

        reviewer = threading.Thread(target=approve)
        reviewer.start()
        verdict = guard.check_completion(AUTH_CODE, trace_id="trace-x")
        reviewer.join()
        assert verdict.explanation_id is not None
        found = guard.explain(verdict.explanation_id)
    assert found.action == "review"
    assert found.review is not None
    assert found.review["state"] == "approved"
    assert found.review["reviewer"] == "carol"
    assert found.review["decision_reason"] == "uses the approved library"
    assert "approved by carol" in found.render()
    assert [r.id for r in found.rules] == ["enterprise.generated-auth-code"]
    assert ("eu-ai-act:art14", "Human oversight") in found.rules[0].controls


def test_an_unknown_or_malformed_id_is_a_usage_error(guard: Guard) -> None:
    guard.check_prompt("hello")
    with pytest.raises(ExplanationNotFound) as caught:
        guard.explain("ex-" + "0" * 32)
    assert caught.value.exit_code == 2
    assert caught.value.hint
    with pytest.raises(UsageError, match="is not an explanation id"):
        guard.explain("ex-123")


def test_an_edited_entry_no_longer_verifies(guard: Guard, db: Path) -> None:
    verdict = guard.check_prompt(f"token {aws_key(12)}")
    assert verdict.explanation_id is not None
    conn = sqlite3.connect(db)
    with conn:
        # Behind custodes' back: the recorded action is softened after the fact.
        conn.execute(
            "UPDATE tail SET leaf = CAST(replace(CAST(leaf AS TEXT), '\"action\":\"block\"',"
            " '\"action\":\"allow\"') AS BLOB)"
        )
    conn.close()
    with Ledger.open(db) as ledger:
        from custodes.guard.explain import explain

        found = explain(ledger, verdict.explanation_id)
    assert not found.verified
    assert found.problem == "the entry's leaf hash does not match its bytes"
