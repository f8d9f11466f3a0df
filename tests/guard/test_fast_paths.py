"""What the guard skips to stay fast never changes what it finds or records.

* the personal-data gates: the guard's reading of the PII scanner equals the scanner's public
  ``scan_text`` on texts built to sit on the gates' edges (digit runs, Unicode digits, capitals);
* the literal pre-filters of policy regexes: a pattern is skipped only on texts it cannot match
  (and searched only in windows around its literals: see test_regex_windows.py),
  case-insensitive look-alikes (``ſ``, ``K``, ``ı``) included;
* the rules a condition admits, remembered per caller, are those the condition gives each time;
* ``Guard.validate_call``: the call and its validations recorded in one commit, each entry as
  ``record_call`` and ``check_completion`` record them.
"""

from __future__ import annotations

import importlib
import json
import random
import re
import sqlite3
import string
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.detectors import pii
from custodes.detectors import secrets as _secrets
from custodes.guard import Action, Caller, Guard, GuardViolation
from custodes.guard.checks import (
    _PII_GATE_SPECS,
    _PII_GATES,
    Part,
    _Lines,
    _PartScan,
    _Prefilter,
    _Shape,
    pii_spans,
)
from custodes.ledger import Ledger, verify_ledger
from custodes.policy import load_policy
from ledgertools import raw_rows

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def entries(db: Path) -> list[dict[str, Any]]:
    rows, _, _ = raw_rows(str(db))
    return [json.loads(leaf) for _, leaf, _ in rows]


# -- personal data -------------------------------------------------------------------------------

# Pieces that put a text on a gate's edge: runs of 1 to 19 digits, separators, Unicode digits
# (which the scanner's \d also reads), capitals, and words the finders look for nearby.
_GROUPED = st.tuples(
    st.lists(st.text(alphabet="0123456789", min_size=1, max_size=6), min_size=2, max_size=7),
    st.sampled_from([" ", "-", ".", "\u00a0", ""]),
).map(lambda groups_sep: groups_sep[1].join(groups_sep[0]))  # 1234 567890 12345, 536-90-1234…
_PIECES = st.one_of(
    st.text(alphabet="0123456789", min_size=1, max_size=19),
    _GROUPED,
    st.sampled_from([" ", "-", ".", "(", ")", "+", "00", "\n", "\u00a0", "/", ","]),
    st.text(alphabet="٠١٢٣٤٥٦٧٨٩०१२३४५६७८९", min_size=1, max_size=12),
    st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=8),
    st.sampled_from(
        ["SSN ", "phone: ", "tel ", "Steuer-ID ", "IBAN ", "GB82 WEST ", "card ", "X-", "2A"]
    ),
    st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=10),
)
_KNOWN = [
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "SSN on file 536-90-1234",
    "NI number: AB 12 34 56 C",
    "NIE X-1234567-L",
    "Steuer-ID: 86095742719",
    "RSSMRA85T10A562S",
    "NIR 1 84 12 76 451 089 46",
    "+44 20 7946 0958",
    "call 020 7946 0958",
    "3782 822463 10005",
]


@SETTINGS
@given(st.lists(st.one_of(_PIECES, st.sampled_from(_KNOWN)), max_size=14).map("".join))
def test_the_gated_pii_reading_finds_what_the_scanner_finds(text: str) -> None:
    assert [m for _, _, m in pii_spans(text)] == list(pii.scan_text(text))


def test_the_known_identifiers_are_found_through_the_gates() -> None:
    # An independent expectation (the scanner's own test cases): each sample under its rule.
    expected = [
        "pii.card", "pii.iban", "pii.us-ssn", "pii.uk-nino", "pii.es-dni",
        "pii.de-steuer-id", "pii.it-codice-fiscale", "pii.fr-nir", "pii.phone", "pii.phone",
        "pii.card",
    ]  # fmt: skip
    found = [[m.rule_id for _, _, m in pii_spans(f"see {sample} here")] for sample in _KNOWN]
    assert found == [[rule] for rule in expected]


# For each finder, a text its regular expression matches with as little as the expression
# needs: a gate stricter than the expression would refuse it.
_AT_THE_EDGE = {
    "_cards": ("_CARD", "1234 5678 9012 3456"),  # runs of four digits
    "_ibans": ("_IBAN", "GB82WESTABCDEFGHIJ"),  # two digits
    "_ssns": ("_SSN", "123-45-6789"),  # four digits
    "_ninos": ("_NINO", "AB 12 34 56 C"),  # two digits
    "_spanish_ids": ("_SPANISH_ID", "X-1234567-L"),  # seven digits
    "_steuer_ids": ("_STEUER_ID", "12 345 678 901"),  # three digits
    "_codici_fiscali": ("_CODICE_FISCALE", "RSSMRALLTMMAMMMS"),  # letters only
    "_nirs": ("_NIR", "1 84 12 2A 451 089 46"),  # three digits
    "_phones": ("_PHONE", "1 2 3 4 5 6 7"),  # seven digits in all
}


@pytest.mark.parametrize("finder", sorted(_AT_THE_EDGE))
def test_a_gate_lets_through_the_least_its_expression_matches(finder: str) -> None:
    regex, sample = _AT_THE_EDGE[finder]
    assert getattr(pii, regex).search(sample) is not None
    assert _PII_GATES[finder](_Shape.of(sample))


# Every layout of digit runs each expression accepts (the gates read runs and separators).
_LAYOUTS = [
    ("_cards", "1234567890123"), ("_cards", "1234-5678-9012-3456-789"),
    ("_cards", "3782 822463 10005"), ("_cards", "3782-822463-1000"),
    ("_ibans", "de44500105175407324931"), ("_ssns", "123456789"), ("_ssns", "123 45 6789"),
    ("_ninos", "AB123456C"), ("_ninos", "AB 12 34 56 D"), ("_steuer_ids", "12345678901"),
    ("_nirs", "184127645108946"), ("_nirs", "184122A45108946"), ("_nirs", "2 84 12 2B 451 089 46"),
    ("_phones", "+44 (0) 20.7946\u00a00958"), ("_phones", "(020) 7946-0958"), ("_phones", "+44 (0)20 7946"),
]  # fmt: skip


@pytest.mark.parametrize(("finder", "sample"), _LAYOUTS)
def test_a_gate_lets_through_every_layout_of_runs(finder: str, sample: str) -> None:
    regex = _PII_GATE_SPECS[finder][0]
    assert getattr(pii, regex).search(f"x {sample} x") is not None
    assert _PII_GATES[finder](_Shape.of(f"x {sample} x"))


@SETTINGS
@given(st.lists(st.one_of(_PIECES, st.sampled_from(_KNOWN)), max_size=14).map("".join))
def test_a_gate_never_refuses_a_text_its_finder_reads(text: str) -> None:
    # Stricter than comparing the findings: a finder's candidates that lose an overlap, or
    # fail their checksum, still count here.
    shape = _Shape.of(text)
    for finder, gate in _PII_GATES.items():
        if finder == "_phones":  # its gate reads the finder's own digit count, not the regex
            read = bool(list(pii._phones(text, ("US", "GB", "DE", "FR", "ES", "IT"))))
        else:
            read = getattr(pii, _PII_GATE_SPECS[finder][0]).search(text) is not None
        assert gate(shape) or not read, finder


def test_every_gate_is_active_for_the_scanner_it_was_read_from() -> None:
    # A gate switches itself off when its finder changes; this says when to read it again.
    assert set(_PII_GATES) == set(_PII_GATE_SPECS)


# -- literal pre-filters of policy regexes ---------------------------------------------------------

PATTERNS = [
    r"(?i)\bpii\.customers?\b",
    r"(?i)\bcustomers?_pii\b",
    r"(?i)\bcustomer_(?:ssn|dob|date_of_birth|national_id|passport)\b",
    r"(?i)\b(?:bcrypt\.|jwt\.(?:encode|decode|sign|verify)\b|check_password|hashpw)",
    r"(?i)\b(?:def|function)[ \t]{1,4}\w{0,40}(?:auth|login|token)\w{0,40}[ \t]{0,4}\(",
    r"wire transfer",
    r"(?i)payroll",
    r"(?i:secret)_KEY",
    r"Kelvin|(?i:kelvin)",
    r"(?:abc)+d?ef",
    r"(?:abc){0,3}xyz",
    r"a[bc]d(?=efg)",
    r"(?x) s e c r e t \s+ key",
]
_FRAGMENTS = [
    "pii.customer", "customers_pii", "customer_ssn", "customer_passport", "bcrypt.", "jwt.sign",
    "check_password", "def login_user(", "function getToken (", "wire transfer", "payroll",
    "secret_KEY", "SECRET_key", "kelvin", "KELVIN", "abcabcef", "xyz", "abdefg", "secret key",
]  # fmt: skip
_LOOKALIKES = {"s": "ſ", "k": "\u212a", "i": "ı", "K": "\u212a", "S": "ſ"}


@st.composite
def _variant(draw: Any) -> str:
    """A fragment some pattern matches, its letters in either case or a folded look-alike."""
    chars = []
    for char in draw(st.sampled_from(_FRAGMENTS)):
        roll = draw(st.integers(0, 9))
        if roll == 0 and char in _LOOKALIKES:
            chars.append(_LOOKALIKES[char])  # a character the engine folds, str.lower does not
        elif roll < 5:
            chars.append(char.swapcase())
        else:
            chars.append(char)
    return "".join(chars)


_texts = st.lists(
    st.one_of(
        _variant(),
        st.text(alphabet=string.ascii_letters + " _.(", max_size=8),
        st.sampled_from(["é", "ß", " ", "\t", "\n"]),
    ),
    max_size=6,
).map("".join)


@SETTINGS
@given(st.sampled_from(PATTERNS), _texts)
def test_a_pattern_is_skipped_only_where_it_cannot_match(source: str, text: str) -> None:
    pattern = re.compile(source)
    prefilter = _Prefilter.of(pattern)
    if prefilter is None:
        return
    scan = _PartScan(Part("prompt", text), _Lines(text))
    if pattern.search(text) is not None:
        assert prefilter.may_match(scan), (source, text, prefilter)


def test_the_pre_filters_read_from_the_patterns() -> None:
    found = {p: _Prefilter.of(re.compile(p)) for p in PATTERNS}
    # ``width``: the longest match, counted by hand (None: unbounded, or reads past a match).
    assert found[r"(?i)\bpii\.customers?\b"] == _Prefilter(("pii.customer",), True, 13)
    assert found[r"wire transfer"] == _Prefilter(("wire transfer",), False, 13)
    assert found[r"(?i:secret)_KEY"] == _Prefilter(("secret",), True, 10)  # the longest
    assert found[r"(?:abc){0,3}xyz"] == _Prefilter(("xyz",), False, 12)
    assert found[r"(?:abc)+d?ef"] == _Prefilter(("abc",), False, None)
    # One of the alternatives; "def"/"function" are weaker than the names after them.
    # 8 + 4 + 40 + 5 + 40 + 4 + 1 characters at most.
    assert found[PATTERNS[4]] == _Prefilter(("auth", "login", "token"), True, 102)
    assert _Prefilter.of(re.compile(r"\A\s{0,64}\S")) is None  # nothing literal to look for
    assert _Prefilter.of(re.compile(r"(?i)ab|cd")) is None  # too short to save anything


def test_a_case_insensitive_pattern_runs_on_text_with_look_alike_letters(tmp_path: Path) -> None:
    # The engine folds "ſ" (long s) into "s": the pre-filter must not skip such a text.
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "rules:\n  - id: acme.payroll\n    message: payroll talk\n    severity: high\n"
        "    applies-to: [prompt]\n    action: block\n    regex: {pattern: '(?i)secret payroll'}\n"
    )
    with Guard(policy, None) as guard:
        assert guard.check_prompt("the ſecret PAYROLL file").action is Action.BLOCK
        assert guard.check_prompt("the SECRET payroll file").action is Action.BLOCK
        assert guard.check_prompt("the secret pay roll file").action is Action.ALLOW


# -- conditions ----------------------------------------------------------------------------------


def test_rules_admitted_by_a_condition_follow_each_caller(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "rules:\n  - id: acme.interns\n    message: interns may not ask about payroll\n"
        "    severity: high\n    applies-to: [prompt]\n    action: block\n"
        "    when: caller.role == 'intern'\n    regex: {pattern: '(?i)payroll'}\n"
    )
    rng = random.Random(5)
    roles = ["intern", "manager", None, "intern", "auditor"]
    with Guard(policy, None) as guard:
        for _ in range(60):  # the same callers again and again, in no order
            role = rng.choice(roles)
            verdict = guard.check_prompt("show me the payroll", caller=Caller(id="u", role=role))
            assert verdict.action is (Action.BLOCK if role == "intern" else Action.ALLOW), role


# -- the call and its validation in one commit -----------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def test_validate_call_records_what_record_call_and_check_completion_record(db: Path) -> None:
    outputs = ["Sure: write to jane.roe@acme-corp.de", "Nothing personal here."]
    with Guard("enterprise", db) as guard:
        admitted = guard.check_prompt("who do I ask?", model="m1")
        call_index, verdicts = guard.validate_call(
            admitted.trace_id, outputs, model="m1", upstream="https://k:pw@api.example/v1",
            status=200, duration_ms=41.25, caller=Caller(id="svc"),
        )  # fmt: skip
        # The same, one step at a time, on another trace: the reference.
        ref_call = guard.record_call(
            "t-ref", model="m1", upstream="https://k:pw@api.example/v1", status=200,
            duration_ms=41.25, output="\n".join(outputs),
        )  # fmt: skip
        refs = [
            guard.check_completion(text, trace_id="t-ref", caller=Caller(id="svc"), model="m1")
            for text in outputs
        ]
    recorded = entries(db)
    call, first, second = recorded[call_index : call_index + 3]
    assert (call["step"], first["step"], second["step"]) == ("call", "validation", "validation")
    assert call["recorded_at"] == first["recorded_at"] == second["recorded_at"]  # one commit
    assert call["upstream"] == "https://api.example/v1"
    assert call["duration_ms"] == 41.25
    assert [v.ledger_index for v in verdicts] == [call_index + 1, call_index + 2]
    assert verdicts[0].action is Action.REDACT
    assert verdicts[0].text == "Sure: write to [REDACTED:pii.email]"
    assert verdicts[1].action is Action.ALLOW
    assert verdicts[1].text == outputs[1]
    # Every field but the trace, the index, the time, the ids and the durations is the same
    # as the step-by-step reference records.
    volatile = {"trace_id", "index", "recorded_at", "explanation_id", "duration_ms", "digests"}
    ref_entries = [recorded[ref_call]]
    ref_entries += [recorded[r.ledger_index] for r in refs if r.ledger_index is not None]
    for got, want in zip([call, first, second], ref_entries, strict=True):
        assert {k: v for k, v in got.items() if k not in volatile} == {
            k: v for k, v in want.items() if k not in volatile
        }
        assert set(got.get("digests", {})) == set(want.get("digests", {}))
    assert [(v.action, v.rules, v.text) for v in verdicts] == [
        (r.action, r.rules, r.text) for r in refs
    ]
    with Ledger.open(db) as ledger:
        assert ledger.check_payload(call_index, "output", "\n".join(outputs))
        assert ledger.check_payload(call_index + 1, "input", outputs[0])
        verify_ledger(ledger)
    assert b"jane.roe" not in b"".join(leaf for _, leaf, _ in raw_rows(str(db))[0])


def test_validate_call_without_outputs_records_the_call(db: Path) -> None:
    with Guard("enterprise", db) as guard:
        index, verdicts = guard.validate_call(
            "t-1", [], model=None, upstream="u", status=200, duration_ms=3.5
        )
    assert verdicts == []
    assert entries(db)[index]["step"] == "call"


@pytest.mark.parametrize("fail_closed", [True, False])
def test_validate_call_on_a_ledger_that_fails(
    db: Path, capfd: pytest.CaptureFixture[str], fail_closed: bool
) -> None:
    with Guard("enterprise", db, fail_closed=fail_closed) as guard:
        guard.check_prompt("first")
        with sqlite3.connect(db) as conn:  # the stored checkpoint no longer matches the tree
            conn.execute("UPDATE tree SET checkpoint = 'X' || checkpoint")
        if fail_closed:
            with pytest.raises(GuardViolation) as caught:
                guard.validate_call(
                    "t-2", ["fine"], model=None, upstream="u", status=200, duration_ms=1.5
                )
            assert caught.value.verdict.http_status == 503
        else:
            index, (verdict,) = guard.validate_call(
                "t-2", ["fine"], model=None, upstream="u", status=200, duration_ms=1.5
            )
            assert index == -1
            assert verdict.allowed
            assert verdict.ledger_index is None
            assert "not recorded: the ledger is unavailable" in verdict.notes
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "{" in line]
    steps = {e.get("step") for e in events if e.get("event") == "ledger-unavailable"}
    assert {"call", "validation"} <= steps
    assert raw_rows(str(db))[1] == 1


def test_policy_regexes_still_decide_with_pre_filters() -> None:
    # The pack's regex rules through the guard: found where they match, not elsewhere.
    rules = {r.id for r in load_policy(["enterprise"]).rules}
    assert "enterprise.customer-pii-schema" in rules
    with Guard("enterprise", None) as guard:
        hit = guard.check_prompt("SELECT * FROM Customer_SSN WHERE id = 1")
        miss = guard.check_prompt("SELECT * FROM customer_orders WHERE id = 1")
        code = guard.check_completion("def login_user(name):\n    pass\n", trace_id="t")
        plain = guard.check_completion("def add(a, b):\n    return a + b\n", trace_id="t")
    assert hit.rules == ("enterprise.customer-pii-schema",)
    assert miss.action is Action.ALLOW
    # Held for review, and with no review queue (no ledger) blocked.
    assert code.rules[0] == "enterprise.generated-auth-code"
    assert code.action is Action.BLOCK
    assert plain.action is Action.ALLOW


# -- ids ---------------------------------------------------------------------------------------


def test_trace_and_explanation_ids_are_random_version_4_uuids(tmp_path: Path) -> None:
    import uuid

    policy = tmp_path / "p.yaml"
    policy.write_text(
        "rules:\n  - id: acme.payroll\n    message: payroll talk\n    severity: high\n"
        "    applies-to: [prompt]\n    action: block\n    regex: {pattern: payroll}\n"
    )
    seen = set()
    with Guard(policy, None) as guard:
        for _ in range(200):
            verdict = guard.check_prompt("the payroll file")
            assert verdict.explanation_id is not None
            for value in (verdict.trace_id, verdict.explanation_id.removeprefix("ex-")):
                parsed = uuid.UUID(hex=value)
                assert parsed.hex == value
                assert parsed.version == 4
                assert parsed.variant == uuid.RFC_4122
                seen.add(value)
    assert len(seen) == 400


# -- the call and its validation on the event loop ------------------------------------------------

_REVIEW_POLICY = """\
schema: 1
name: loop-test
rules:
  - id: t.pii
    message: personal data
    applies-to: [completion]
    action: redact
    pii: {}
  - id: t.wire
    message: wire transfers need a human
    severity: medium
    applies-to: [completion]
    action: review
    regex: {pattern: "wire transfer"}
"""


def _steps_without_volatile(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    volatile = {"trace_id", "index", "recorded_at", "explanation_id", "duration_ms", "digests"}
    return [{k: v for k, v in e.items() if k not in volatile} for e in recorded]


@pytest.mark.parametrize("alone", [True, False])
def test_avalidate_call_records_what_validate_call_records(db: Path, alone: bool) -> None:
    import asyncio

    outputs = ["Sure: write to jane.roe@acme-corp.de", "Nothing personal here."]
    with Guard("enterprise", db) as guard:
        ref_index, refs = guard.validate_call(
            "t-ref", outputs, model="m1", upstream="u", status=200, duration_ms=2.0
        )
        assert guard._executor is None  # nothing so far went to the pool

        async def on_loop() -> tuple[int, list[Any]]:
            admitted = await guard.aadmit("who do I ask?", model="m1", trace_id="t-loop")
            assert admitted.allowed
            assert admitted.ledger_index is None  # staged
            return await guard.avalidate_call(
                "t-loop", outputs, model="m1", upstream="u", status=200, duration_ms=2.0,
                alone=alone,
            )  # fmt: skip

        index, verdicts = asyncio.run(on_loop())
        # Alone, the checks and the commit ran on the loop's thread; else on the pool.
        assert (guard._executor is None) is alone
        recorded = entries(db)  # committed before the call returned
    assert [e["step"] for e in recorded[index - 1 : index + 3]] == [
        "admission", "call", "validation", "validation",
    ]  # fmt: skip
    assert len({e["recorded_at"] for e in recorded[index - 1 : index + 3]}) == 1  # one commit
    assert _steps_without_volatile(recorded[index : index + 3]) == _steps_without_volatile(
        recorded[ref_index : ref_index + 3]
    )
    assert [v.ledger_index for v in verdicts] == [index + 1, index + 2]
    assert [(v.action, v.rules, v.text) for v in verdicts] == [
        (r.action, r.rules, r.text) for r in refs
    ]
    assert verdicts[0].text == "Sure: write to [REDACTED:pii.email]"
    with Ledger.open(db) as ledger:
        verify_ledger(ledger)


def test_avalidate_call_sends_an_output_held_for_review_to_the_pool(tmp_path: Path) -> None:
    import asyncio

    policy = tmp_path / "policy.yaml"
    policy.write_text(_REVIEW_POLICY)
    db = tmp_path / "ledger.db"
    with Guard(str(policy), db) as guard:
        index, (verdict,) = asyncio.run(
            guard.avalidate_call(
                "t-1", ["send the wire transfer now"], model=None, upstream="u", status=200,
                duration_ms=1.0, alone=True,
            )
        )
        assert guard._executor is not None  # the submission is I/O: not on the loop
    assert verdict.action is Action.REVIEW
    assert verdict.review_id is not None
    recorded = entries(db)
    assert recorded[index]["step"] == "call"
    assert recorded[index + 1]["review_id"] == verdict.review_id


def test_avalidate_call_alone_on_a_ledger_that_fails_fails_closed(db: Path) -> None:
    import asyncio

    with Guard("enterprise", db) as guard:
        guard.check_prompt("first")
        with sqlite3.connect(db) as conn:  # the stored checkpoint no longer matches the tree
            conn.execute("UPDATE tree SET checkpoint = 'X' || checkpoint")
        with pytest.raises(GuardViolation) as caught:
            asyncio.run(
                guard.avalidate_call(
                    "t-2", ["fine"], model=None, upstream="u", status=200, duration_ms=1.5,
                    alone=True,
                )
            )
        assert caught.value.verdict.http_status == 503
    assert raw_rows(str(db))[1] == 1


# -- the secret rules a text wakes -----------------------------------------------------------------


def _samples() -> Any:
    # tests/detectors/secret_samples.py builds format-valid credentials from their specs.
    where = str(Path(__file__).resolve().parents[1] / "detectors")
    if where not in sys.path:
        sys.path.append(where)
    return importlib.import_module("secret_samples")


samples = _samples()


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    names=st.lists(st.sampled_from(sorted(samples.SAMPLES)), max_size=4),
    filler=st.text(alphabet=string.ascii_letters + string.digits + " =:_-\n\"'", max_size=80),
    windowed=st.booleans(),
)
def test_the_rules_a_text_wakes_find_what_every_rule_finds(
    seed: int, names: list[str], filler: str, windowed: bool
) -> None:
    rng = random.Random(seed)
    pieces = [filler]
    secrets_in: list[str] = []
    for name in names:
        text, secret = samples.SAMPLES[name].positive(rng)
        pieces.append(text)
        secrets_in.append(secret)
        pieces.extend(samples.SAMPLES[name].negatives(rng)[:1])
    text = "\n".join(pieces)
    finder = _secrets._Finder(text, _secrets.RULES, windowed=windowed)
    woken = finder.candidates("config.env", _secrets.RULES)  # the keyword-indexed path
    every = finder.candidates("config.env", list(_secrets.RULES))  # each rule asked in turn
    assert woken == every
    reported = {c.value for c in woken if c.reported}
    for secret in secrets_in:  # the samples' own secrets, built from their formats
        assert any(secret in value or value in secret for value in reported), secret
