"""The PII detector: each format found with its checksum, hard negatives left alone, never in clear.

Every checksum below is written here again, from the standards, and independently of
``custodes.detectors.pii_checks``: the properties hold the detector against these references.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import string

import phonenumbers
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from custodes.detectors import pii_checks
from custodes.detectors.interface import Detector
from custodes.detectors.pii import (
    DEFAULT_REGIONS,
    PiiDetector,
    national_number_plausible,
    scan_text,
)
from custodes.findings import Finding, Severity
from custodes.policy.controls import is_control
from custodes.subject import Subject, SubjectKind


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _found(text: str) -> list[tuple[str, str]]:
    return [(m.rule_id, m.sha256) for m in scan_text(text)]


def _rules(text: str) -> list[str]:
    return [m.rule_id for m in scan_text(text)]


# -- independent references -----------------------------------------------------------------------


def ref_luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass Luhn (ISO/IEC 7812-1 annex B)."""
    total = 0
    # Counting from the check digit's position (index 0, not doubled) leftwards.
    for position, char in enumerate(reversed(body), start=1):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            value = value // 10 + value % 10
        total += value
    return str((10 - total % 10) % 10)


def ref_luhn_valid(number: str) -> bool:
    return ref_luhn_check_digit(number[:-1]) == number[-1]


def ref_iban_check(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 − (BBAN ‖ country ‖ "00" as a number, letters A=10…) mod 97."""
    moved = bban + country + "00"
    number = "".join(str(ord(c) - 55) if c.isalpha() else c for c in moved)
    remainder = 0
    for chunk_start in range(0, len(number), 9):  # piecewise, as bank software does it
        remainder = int(str(remainder) + number[chunk_start : chunk_start + 9]) % 97
    return f"{98 - remainder:02d}"


def ref_ssn_issuable(area: int, group: int, serial: int) -> bool:
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


DNI_TABLE = "TRWAGMYFPDXBNJZSQVHLCKE"


def ref_dni_letter(number: int) -> str:
    return DNI_TABLE[number % 23]


def ref_steuer_check(first_ten: str) -> str:
    """ISO 7064 MOD 11,10 (hybrid system), as the BZSt publishes it."""
    p = 10
    for char in first_ten:
        s = (p + int(char)) % 10
        if s == 0:
            s = 10
        p = (2 * s) % 11
    check = (11 - p) % 10
    return str(check)


CF_ODD_DIGITS = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21]
CF_ODD_LETTERS = {
    "A": 1, "B": 0, "C": 5, "D": 7, "E": 9, "F": 13, "G": 15, "H": 17, "I": 19, "J": 21,
    "K": 2, "L": 4, "M": 18, "N": 20, "O": 11, "P": 3, "Q": 6, "R": 8, "S": 12, "T": 14,
    "U": 16, "V": 10, "W": 22, "X": 25, "Y": 24, "Z": 23,
}  # fmt: skip


def ref_cf_check(first15: str) -> str:
    total = 0
    for position, char in enumerate(first15, start=1):
        if position % 2 == 1:
            total += CF_ODD_DIGITS[int(char)] if char.isdigit() else CF_ODD_LETTERS[char]
        else:
            total += int(char) if char.isdigit() else string.ascii_uppercase.index(char)
    return string.ascii_uppercase[total % 26]


def ref_nir_key(first13: str) -> str:
    numeric = first13.replace("2A", "19").replace("2B", "18")
    return f"{97 - int(numeric) % 97:02d}"


# -- every format: a positive ------------------------------------------------------------------

POSITIVES = [
    # (case, text, rule, canonical value the digest is taken of)
    ("email", "Write to jane.doe@acme-corp.io today.", "pii.email", "jane.doe@acme-corp.io"),
    ("email-mailto", "<a href='mailto:ops@acme.co.uk'>", "pii.email", "ops@acme.co.uk"),
    ("phone-intl", "Call +44 20 7946 0958 tomorrow", "pii.phone", "+442079460958"),
    ("phone-us", "office: (415) 555-2671.", "pii.phone", "+14155552671"),
    ("phone-fr", "Mon portable : 06 12 34 56 78", "pii.phone", "+33612345678"),
    ("phone-00", "aus Berlin 0049 30 901820 anrufen", "pii.phone", "+4930901820"),
    ("phone-bare-ctx", "phone: 4155552671", "pii.phone", "+14155552671"),
    ("card-visa", "card 4539 1488 0343 6467 exp 12/29", "pii.card", "4539148803436467"),
    ("card-plain", "pan=5425233430109903;", "pii.card", "5425233430109903"),
    ("card-amex", "Amex 3782-822463-10005 on file", "pii.card", "378282246310005"),
    ("iban-print", "IBAN: DE89 3704 0044 0532 0130 00.", "pii.iban", "DE89370400440532013000"),
    ("iban-compact", "to GB82WEST12345698765432 please", "pii.iban", "GB82WEST12345698765432"),
    ("iban-lower", "nl91abna0417164300", "pii.iban", "NL91ABNA0417164300"),
    ("ssn-dashed", "SSN on file 536-90-1234", "pii.us-ssn", "536901234"),
    ("ssn-bare-ctx", "social security number 536901234", "pii.us-ssn", "536901234"),
    ("nino", "NI number: AB 12 34 56 C", "pii.uk-nino", "AB123456C"),
    ("dni", "DNI 12345678Z", "pii.es-dni", "12345678Z"),
    ("nie", "NIE X-1234567-L", "pii.es-dni", "X1234567L"),
    ("steuer-id", "Steuer-ID: 86095742719", "pii.de-steuer-id", "86095742719"),
    ("codice-fiscale", "CF RSSMRA85T10A562S", "pii.it-codice-fiscale", "RSSMRA85T10A562S"),
    ("nir", "NIR 1 84 12 76 451 089 46", "pii.fr-nir", "184127645108946"),
    (
        "nir-corsica",
        "n° 2 90 05 2A 004 012 " + ref_nir_key("290052A004012"),
        "pii.fr-nir",
        "290052A004012" + ref_nir_key("290052A004012"),
    ),
]


@pytest.mark.parametrize(("case", "text", "rule", "canonical"), POSITIVES, ids=lambda v: str(v))
def test_each_format_is_found_with_the_digest_of_its_canonical_value(
    case: str, text: str, rule: str, canonical: str
) -> None:
    matches = list(scan_text(text))
    assert [m.rule_id for m in matches] == [rule], case
    assert matches[0].sha256 == _sha(canonical)


HARD_NEGATIVES = [
    # (case, text, rule that must not fire)
    ("email-doc-domain", "e.g. alice@example.com or bob@corp.example", "pii.email"),
    ("email-test-tld", "fixture user@host.test", "pii.email"),
    ("email-asset", "background: url(icon@2x.png)", "pii.email"),
    ("email-ssh-remote", "git clone git@github.com:org/repo.git", "pii.email"),
    ("email-url-userinfo", "https://user:hunter2@db.internal.io/x", "pii.email"),
    ("email-npm", "npm i lodash@4.17.21 @types/node@20.1.0", "pii.email"),
    ("email-no-tld", "ssh deploy@localhost", "pii.email"),
    ("phone-date", "released 2024-01-15 and 15/01/2024", "pii.phone"),
    ("phone-ip", "host 192.168.100.200 port 8080", "pii.phone"),
    ("phone-version", "python 3.11.4 / v1.22.333.4444", "pii.phone"),
    ("phone-bad-area", "+1 123 456 7890", "pii.phone"),
    ("phone-bare-no-ctx", "order 4155552671 shipped", "pii.phone"),
    ("phone-amount", "revenue 10 000 000 EUR in 2023 2024 2025", "pii.phone"),
    ("phone-counting", "1 2 3 4 5 6 7 8 9", "pii.phone"),
    ("phone-isbn", "ISBN 978-3-16-148410-0", "pii.phone"),
    ("card-luhn", "card 4539 1488 0343 6468", "pii.card"),
    ("card-no-iin", "id 9999 9999 9999 9995", "pii.card"),
    ("card-zeros", "0000 0000 0000 0000", "pii.card"),
    ("card-float", "pi≈3.4539148803436467", "pii.card"),
    ("card-too-long", "ref 45391488034364670000", "pii.card"),
    ("card-mixed-separators", "4539-1488 0343-6467", "pii.card"),
    ("iban-check-digits", "DE88 3704 0044 0532 0130 00", "pii.iban"),
    ("iban-length", "DE89 3704 0044 0532 0130 0", "pii.iban"),
    ("iban-country", "XX89370400440532013000", "pii.iban"),
    ("iban-grouping", "DE89 370 40044 0532 0130 00", "pii.iban"),
    ("ssn-area-000", "000-12-3456", "pii.us-ssn"),
    ("ssn-area-666", "666-12-3456", "pii.us-ssn"),
    ("ssn-area-9xx", "912-34-5678 and 999-12-3456", "pii.us-ssn"),
    ("ssn-group-00", "536-00-1234", "pii.us-ssn"),
    ("ssn-serial-0000", "536-90-0000", "pii.us-ssn"),
    ("ssn-woolworth", "078-05-1120", "pii.us-ssn"),
    ("ssn-bare-no-ctx", "ticket 536901234", "pii.us-ssn"),
    ("nino-q-prefix", "QQ 12 34 56 C", "pii.uk-nino"),
    ("nino-o-second", "AO123456C", "pii.uk-nino"),
    ("nino-unused-prefix", "GB123456A", "pii.uk-nino"),
    ("nino-suffix", "AB123456E", "pii.uk-nino"),
    ("dni-letter", "DNI 12345678A", "pii.es-dni"),
    ("nie-letter", "NIE X1234567A", "pii.es-dni"),
    ("steuer-no-ctx", "order 86095742719", "pii.de-steuer-id"),
    ("steuer-check", "Steuer-ID 86095742718", "pii.de-steuer-id"),
    ("steuer-digits", "Steuer-ID 12345678903", "pii.de-steuer-id"),
    ("cf-check", "CF RSSMRA85T10A562T", "pii.it-codice-fiscale"),
    ("cf-day", "CF RSSMRA85T99A562S", "pii.it-codice-fiscale"),
    ("nir-key", "NIR 1 84 12 76 451 089 47", "pii.fr-nir"),
    ("nir-month", "NIR 1 84 14 76 451 089 46", "pii.fr-nir"),
]


@pytest.mark.parametrize(("case", "text", "rule"), HARD_NEGATIVES, ids=lambda v: str(v))
def test_hard_negatives_are_not_reported(case: str, text: str, rule: str) -> None:
    assert rule not in _rules(text), case


def test_hard_negative_cards_fail_the_reference_or_the_iin() -> None:
    # The negatives above must be negatives for the right reason, by the test's own reference.
    assert not ref_luhn_valid("4539148803436468")
    assert ref_luhn_valid("9999999999999995")  # Luhn-valid: only the IIN rules it out
    assert ref_luhn_valid("0000000000000000")


def test_a_broken_card_number_is_not_then_called_a_phone_number() -> None:
    assert _rules("4539 1488 0343 6468") == []


def test_documented_test_cards_are_reported_low_and_named_as_test_data() -> None:
    matches = list(scan_text("use 4242 4242 4242 4242 in staging, 4539 1488 0343 6467 in prod"))
    assert [(m.rule_id, m.severity) for m in matches] == [
        ("pii.card", Severity.LOW),
        ("pii.card", Severity.HIGH),
    ]
    assert "test card" in matches[0].description
    assert "test" not in matches[1].description


def test_every_published_test_card_is_a_real_card_number() -> None:
    for number in pii_checks.TEST_CARDS:
        assert ref_luhn_valid(number), number
        assert pii_checks.card_scheme(number) is not None, number


def test_severities() -> None:
    text = "a@acme.io 4539148803436467 GB82WEST12345698765432 536-90-1234 +44 20 7946 0958"
    severities = {m.rule_id: m.severity for m in scan_text(text)}
    assert severities == {
        "pii.email": Severity.MEDIUM,
        "pii.card": Severity.HIGH,
        "pii.iban": Severity.HIGH,
        "pii.us-ssn": Severity.HIGH,
        "pii.phone": Severity.MEDIUM,
    }


# -- never in clear ---------------------------------------------------------------------------------

PREVIEWS = [
    ("jane.doe@acme-corp.io", "j…@acme-corp.io"),
    ("x@acme.io", "…@acme.io"),
    ("4539 1488 0343 6467", "…6467"),
    ("DE89 3704 0044 0532 0130 00", "DE…3000"),
    ("536-90-1234", "…34"),
    ("+44 20 7946 0958", "+44…58"),
    ("AB 12 34 56 C", "AB…"),
]


@pytest.mark.parametrize(("text", "preview"), PREVIEWS)
def test_previews_are_redacted(text: str, preview: str) -> None:
    assert [m.preview for m in scan_text(text)] == [preview]


@pytest.mark.parametrize(("case", "text", "rule", "canonical"), POSITIVES, ids=lambda v: str(v))
def test_no_finding_field_holds_the_value(case: str, text: str, rule: str, canonical: str) -> None:
    subject = Subject(path="prompt", text=text, kind=SubjectKind.PROMPT)
    findings = list(PiiDetector().scan(subject))
    assert findings, case
    value = canonical
    digits = "".join(c for c in value if c.isdigit())
    for finding in findings:
        shown = repr(finding) + "".join(
            str(getattr(finding, f.name)) for f in dataclasses.fields(finding)
        )
        assert value not in shown
        if len(digits) >= 7:
            assert digits not in shown
            assert digits[:7] not in shown  # not even most of it


def test_hash_key_gives_hmac_digests() -> None:
    key = b"k" * 32
    [match] = scan_text("card 4539 1488 0343 6467", hash_key=key)
    expected = hmac.new(key, b"4539148803436467", hashlib.sha256).hexdigest()
    assert match.sha256 == expected
    assert match.sha256 != _sha("4539148803436467")


# -- the detector interface ----------------------------------------------------------------------


def test_detector_reports_findings_on_original_lines() -> None:
    detector: Detector = PiiDetector()
    subject = Subject(
        path="chat/42",
        text="hello\nmy iban GB82WEST12345698765432\nbye\nmail me: ann@acme.io",
        kind=SubjectKind.COMPLETION,
        line_numbers=(3, 7, 8, 12),
    )
    findings = list(detector.scan(subject))
    assert [(f.rule, f.start_line, f.end_line) for f in findings] == [
        ("pii.iban", 7, 7),
        ("pii.email", 12, 12),
    ]
    for finding in findings:
        assert isinstance(finding, Finding)
        assert finding.kind == "pii"
        assert finding.path == "chat/42"
        assert finding.controls == ("owasp-llm:LLM02",)
        assert all(is_control(c) for c in finding.controls)
    assert detector.name == "pii"


def test_regions_decide_where_national_numbers_are_tried() -> None:
    text = "Mon portable : 06 12 34 56 78"
    assert _rules(text) == ["pii.phone"]
    assert list(PiiDetector(regions=("US",)).scan(Subject(path="p", text=text))) == []
    # International numbers need no region.
    assert [m.rule_id for m in scan_text("+33 6 12 34 56 78", regions=())] == ["pii.phone"]


def test_same_number_written_two_ways_has_one_digest() -> None:
    a = _found("+44 20 7946 0958")
    b = _found("+442079460958")
    c = _found("from abroad 0044 20 7946 0958")
    assert a == b == c == [("pii.phone", _sha("+442079460958"))]


def test_lines_and_columns() -> None:
    text = "first line\n  ssn 536-90-1234\n\nx jane@acme.io"
    assert [(m.rule_id, m.line, m.column) for m in scan_text(text)] == [
        ("pii.us-ssn", 2, 7),
        ("pii.email", 4, 3),
    ]


# -- properties against the references ---------------------------------------------------------------

# (prefix, total length) of numbers each scheme issues, from the schemes' published ranges.
CARD_SHAPES = [
    ("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
    ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("3589", 19),
    ("36", 14), ("300", 14), ("62", 16), ("81", 17), ("2200", 16), ("6759", 18),
]  # fmt: skip

FILLER = st.text(alphabet=string.ascii_letters + " .,;:!?'\n", max_size=40)


@st.composite
def valid_cards(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from(CARD_SHAPES))
    body = prefix + draw(st.text(alphabet=string.digits, min_size=length - len(prefix) - 1,
                                 max_size=length - len(prefix) - 1))  # fmt: skip
    return body + ref_luhn_check_digit(body)


def _print_card(digits: str, style: str) -> str:
    if style == "plain":
        return digits
    sep = " " if style == "spaces" else "-"
    if len(digits) == 15:
        return sep.join((digits[:4], digits[4:10], digits[10:]))
    if len(digits) < 16:
        return digits
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


@settings(max_examples=300, deadline=None)
@given(valid_cards(), st.sampled_from(["plain", "spaces", "dashes"]), FILLER, FILLER)
def test_a_valid_card_in_any_text_is_found(digits: str, style: str, left: str, right: str) -> None:
    assert ref_luhn_valid(digits)
    text = f"{left} {_print_card(digits, style)} {right}"
    assert ("pii.card", _sha(digits)) in _found(text)


@settings(max_examples=300, deadline=None)
@given(valid_cards(), st.data(), FILLER, FILLER)
def test_a_card_with_one_digit_changed_is_never_a_card(
    digits: str, data: st.DataObject, left: str, right: str
) -> None:
    at = data.draw(st.integers(0, len(digits) - 1))
    new = data.draw(st.sampled_from([d for d in string.digits if d != digits[at]]))
    changed = digits[:at] + new + digits[at + 1 :]
    assert not ref_luhn_valid(changed)  # Luhn catches every single-digit substitution
    style = data.draw(st.sampled_from(["plain", "spaces", "dashes"]))
    assert "pii.card" not in _rules(f"{left} {_print_card(changed, style)} {right}")


# Country, length, how its BBAN starts (letters of a bank code), from the SWIFT registry.
IBAN_SHAPES = [
    ("DE", 22, ""), ("GB", 22, "WEST"), ("NL", 18, "ABNA"), ("FR", 27, ""), ("ES", 24, ""),
    ("IT", 27, "X"), ("BE", 16, ""), ("CH", 21, ""), ("PL", 28, ""), ("NO", 15, ""),
    ("AT", 20, ""), ("IE", 22, "AIBK"), ("SE", 24, ""), ("PT", 25, ""), ("FI", 18, ""),
]  # fmt: skip


@st.composite
def valid_ibans(draw: st.DrawFn) -> str:
    country, length, bank = draw(st.sampled_from(IBAN_SHAPES))
    rest = length - 4 - len(bank)
    bban = bank + draw(st.text(alphabet=string.digits, min_size=rest, max_size=rest))
    return country + ref_iban_check(country, bban) + bban


def _print_iban(iban: str, grouped: bool) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if grouped else iban


@settings(max_examples=300, deadline=None)
@given(valid_ibans(), st.booleans(), FILLER, FILLER)
def test_a_valid_iban_in_any_text_is_found(iban: str, grouped: bool, left: str, right: str) -> None:
    text = f"{left} {_print_iban(iban, grouped)} {right}"
    assert ("pii.iban", _sha(iban)) in _found(text)


@settings(max_examples=300, deadline=None)
@given(valid_ibans(), st.data(), st.booleans(), FILLER, FILLER)
def test_an_iban_with_one_character_changed_is_never_an_iban(
    iban: str, data: st.DataObject, grouped: bool, left: str, right: str
) -> None:
    at = data.draw(st.integers(2, len(iban) - 1))  # check digits or BBAN
    alphabet = string.digits if iban[at].isdigit() else string.ascii_uppercase
    new = data.draw(st.sampled_from([c for c in alphabet if c != iban[at]]))
    changed = iban[:at] + new + iban[at + 1 :]
    # MOD 97-10 catches every single substitution: the reference agrees it is invalid.
    assert ref_iban_check(changed[:2], changed[4:]) != changed[2:4]
    assert "pii.iban" not in _rules(f"{left} {_print_iban(changed, grouped)} {right}")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 999), st.integers(0, 99), st.integers(0, 9999))
def test_ssn_reported_exactly_when_issuable(area: int, group: int, serial: int) -> None:
    digits = f"{area:03d}{group:02d}{serial:04d}"
    assume(digits not in {"078051120", "219099999", "457555462", "123456789"})
    assume(len(set(digits)) > 1)
    found = "pii.us-ssn" in _rules(f"SSN: {area:03d}-{group:02d}-{serial:04d}")
    assert found == ref_ssn_issuable(area, group, serial)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 99_999_999), st.sampled_from(DNI_TABLE), st.sampled_from(["", "X", "Y", "Z"]))
def test_spanish_ids_reported_exactly_with_their_letter(number: int, letter: str, nie: str) -> None:
    if nie:
        number %= 10_000_000
        text, value = f"{nie}{number:07d}{letter}", int("XYZ".index(nie) * 10_000_000 + number)
    else:
        text, value = f"{number:08d}{letter}", number
    assert ("pii.es-dni" in _rules(f"id {text} ok")) == (ref_dni_letter(value) == letter)


@st.composite
def steuer_bodies(draw: st.DrawFn) -> str:
    """Ten digits with one digit twice or three times (never three in a row), the rest once."""
    repeated = draw(st.sampled_from(string.digits))
    times = draw(st.sampled_from([2, 3]))
    others = draw(st.permutations([d for d in string.digits if d != repeated]))
    digits = draw(st.permutations([repeated] * times + list(others[: 10 - times])))
    body = "".join(digits)
    assume(body[0] != "0")
    assume(repeated * 3 not in body)
    return body


@settings(max_examples=300, deadline=None)
@given(steuer_bodies(), st.sampled_from(string.digits))
def test_steuer_id_reported_exactly_with_its_check_digit(body: str, check: str) -> None:
    found = "pii.de-steuer-id" in _rules(f"Steuer-IdNr. {body}{check}")
    assert found == (ref_steuer_check(body) == check)


@st.composite
def codici_fiscali(draw: st.DrawFn) -> str:
    letters = st.sampled_from(string.ascii_uppercase)
    surname_name = "".join(draw(st.lists(letters, min_size=6, max_size=6)))
    year = f"{draw(st.integers(0, 99)):02d}"
    month = draw(st.sampled_from("ABCDEHLMPRST"))
    day = f"{draw(st.sampled_from([*range(1, 32), *range(41, 72)])):02d}"
    place = draw(letters) + f"{draw(st.integers(0, 999)):03d}"
    return surname_name + year + month + day + place


@settings(max_examples=300, deadline=None)
@given(codici_fiscali(), st.sampled_from(string.ascii_uppercase))
def test_codice_fiscale_reported_exactly_with_its_check_char(first15: str, check: str) -> None:
    found = "pii.it-codice-fiscale" in _rules(f"CF: {first15}{check}")
    assert found == (ref_cf_check(first15) == check)


@st.composite
def nir_bodies(draw: st.DrawFn) -> str:
    sex = draw(st.sampled_from("12"))
    year = f"{draw(st.integers(0, 99)):02d}"
    month = f"{draw(st.integers(1, 12)):02d}"
    dept = draw(st.sampled_from([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]))
    commune = f"{draw(st.integers(1, 999)):03d}"
    order = f"{draw(st.integers(1, 999)):03d}"
    return sex + year + month + dept + commune + order


@settings(max_examples=300, deadline=None)
@given(nir_bodies(), st.integers(1, 97), st.booleans())
def test_nir_reported_exactly_with_its_key(body: str, key: int, spaced: bool) -> None:
    key_text = f"{key:02d}"
    if spaced:
        parts = (body[0], body[1:3], body[3:5], body[5:7], body[7:10], body[10:13], key_text)
        shown = " ".join(parts)
    else:
        shown = body + key_text
    found = "pii.fr-nir" in _rules(f"sécu {shown}")
    assert found == (ref_nir_key(body) == key_text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=string.digits, min_size=13, max_size=19))
def test_luhn_agrees_with_the_reference(digits: str) -> None:
    assert pii_checks.luhn_ok(digits) == ref_luhn_valid(digits)


def test_known_good_identifiers_from_their_issuers_documentation() -> None:
    # Values printed by the issuers themselves, not computed here or by the code under test.
    assert pii_checks.iban_ok("DE89370400440532013000")
    assert pii_checks.iban_ok("FR1420041010050500013M02606")
    assert pii_checks.codice_fiscale_ok("RSSMRA85T10A562S")
    assert pii_checks.nir_ok("184127645108946")
    assert pii_checks.spanish_id_ok("12345678Z")


# -- phone numbers: the cheap filter never rejects what libphonenumber accepts -------------------

REGIONS = (*DEFAULT_REGIONS, "NL", "CH", "JP", "IN", "BR", "AR", "MX", "AU", "CN", "PL")
NUMBER_TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.VOIP,
]


@pytest.mark.parametrize("region", REGIONS)
def test_plausibility_filter_keeps_the_librarys_example_numbers(region: str) -> None:
    checked = 0
    for number_type in NUMBER_TYPES:
        example = phonenumbers.example_number_for_type(region, number_type)
        if example is None:
            continue
        national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        digits = "".join(c for c in national if c.isdigit())
        assert phonenumbers.is_valid_number(phonenumbers.parse(national, region))
        assert national_number_plausible(digits, region), (region, national)
        checked += 1
    assert checked >= 2


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REGIONS), st.text(alphabet=string.digits, min_size=6, max_size=15))
# Numbers libphonenumber reads past the region's own calling code, its international prefix,
# or as another region of a shared calling code: each was once wrongly ruled out.
@example("DE", "4930000")  # +49 30000
@example("AU", "6100860053309")  # +61 860053309, the zeros after the code dropped
@example("CN", "0016419874852")  # 00 1 641…: dialled abroad
@example("US", "13106743")  # a number of Canada's
def test_plausibility_filter_never_rejects_a_valid_number(region: str, digits: str) -> None:
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
    except phonenumbers.NumberParseException:
        valid = False
    if valid:
        assert national_number_plausible(digits, region)


# -- email ---------------------------------------------------------------------------------------

LOCAL = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(LOCAL, min_size=1, max_size=3),
    st.lists(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10),
             min_size=1, max_size=3),
    st.sampled_from(["com", "io", "de", "co.uk", "org", "fr"]),
    FILLER,
    FILLER,
)  # fmt: skip
def test_an_email_in_any_text_is_found(
    local_parts: list[str], labels: list[str], tld: str, left: str, right: str
) -> None:
    local = ".".join(local_parts)
    domain = ".".join([*labels, tld])
    assume("example" not in domain)
    text = f"{left} <{local}@{domain.upper()}> {right}"
    assert ("pii.email", _sha(f"{local}@{domain}")) in _found(text)
