"""Find personal data in text: emails, phone numbers, payment cards, IBANs and national IDs.

:func:`scan_text` yields one :class:`PiiMatch` per identifier. Like the secrets scanner, a match
never holds the value: a short redacted preview (``j…@example.com``, ``…4242``) and the SHA-256
of the value in its canonical form — a card's digits, an IBAN without spaces, a phone number in
E.164 — so the same number written two ways is one finding.

What each rule accepts (checksums live in :mod:`custodes.detectors.pii_checks`):

* ``pii.card`` — 13 to 19 digits, plain or in groups of four (or 4-6-5 / 4-6-4), inside a card
  scheme's IIN range and lengths, passing Luhn. Test numbers published by payment providers
  (``4242 4242 4242 4242``) are still cards and still reported, at ``low`` severity and named
  as test data, so a policy can drop them without blinding the rule.
* ``pii.iban`` — a known country, that country's registry length and MOD 97-10.
* ``pii.us-ssn`` — ``AAA-GG-SSSS`` with an area, group and serial that can be issued; written
  without dashes only next to words like "SSN" or "social security".
* ``pii.uk-nino`` — HMRC's prefix rules and an A–D suffix (there is no checksum).
* ``pii.es-dni``, ``pii.de-steuer-id``, ``pii.it-codice-fiscale``, ``pii.fr-nir`` — each with
  its check character or digits; the German number is eleven bare digits, so it needs a word
  like "Steuer-ID" before it.
* ``pii.email`` — an address on a real-looking domain; the documentation domains of RFC 2606
  and RFC 6761 (``example.com``, ``.test``, ``.invalid`` …) and ``@2x.png`` asset names are not.
* ``pii.phone`` — numbers in international form (``+44 …``, ``0044 …``) valid by Google's
  libphonenumber metadata, and national ones valid in one of the configured regions *and*
  grouped the way that region writes them (so dates, versions and amounts are not phones); a
  bare run of digits only next to words like "phone" or "tel".

A plain SHA-256 of a nine-digit SSN or a card number can be reversed by trying every number;
pass ``hash_key`` (kept secret, stable across runs) to get HMAC-SHA-256 digests instead.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberFormat, PhoneNumberMatcher

from custodes.detectors import pii_checks as checks
from custodes.findings import Finding, Severity
from custodes.subject import Subject

__all__ = [
    "CONTROLS",
    "DEFAULT_REGIONS",
    "RULES",
    "PiiDetector",
    "PiiMatch",
    "PiiRule",
    "national_number_plausible",
    "scan_subject",
    "scan_text",
]

CONTROLS: tuple[str, ...] = ("owasp-llm:LLM02",)
"""Personal data in a prompt or a completion is sensitive information disclosure."""

DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT")
"""Where a phone number written without a country code is tried, in order."""


@dataclass(frozen=True)
class PiiRule:
    """One kind of personal identifier. ``priority`` settles overlaps: higher wins."""

    id: str
    description: str
    severity: Severity
    priority: int


_RULE_LIST = (
    # An IBAN's BBAN may hold a run of digits shaped like a card; the IBAN, anchored by its
    # country and MOD 97, is the better reading.
    PiiRule("pii.iban", "IBAN (bank account number)", Severity.HIGH, 95),
    PiiRule("pii.card", "payment card number", Severity.HIGH, 90),
    PiiRule("pii.it-codice-fiscale", "Italian codice fiscale", Severity.HIGH, 80),
    PiiRule("pii.fr-nir", "French social security number (NIR)", Severity.HIGH, 80),
    PiiRule("pii.es-dni", "Spanish DNI/NIE number", Severity.HIGH, 80),
    PiiRule("pii.de-steuer-id", "German tax identification number", Severity.HIGH, 75),
    PiiRule("pii.us-ssn", "US Social Security number", Severity.HIGH, 70),
    PiiRule("pii.uk-nino", "UK National Insurance number", Severity.HIGH, 70),
    PiiRule("pii.email", "email address", Severity.MEDIUM, 60),
    PiiRule("pii.phone", "phone number", Severity.MEDIUM, 40),
)
RULES: dict[str, PiiRule] = {rule.id: rule for rule in _RULE_LIST}


@dataclass(frozen=True)
class PiiMatch:
    """One identifier: where it is and what it is, but not its value.

    ``line`` and ``end_line`` are 1-based lines of its first and last characters, ``column``
    (1-based, in characters) where it starts; ``sha256`` is the hex digest of the canonical
    value (HMAC-SHA-256 when the scan was given a key).
    """

    rule_id: str
    severity: Severity
    line: int
    column: int
    end_line: int
    preview: str
    sha256: str
    description: str


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    rule: PiiRule
    canonical: str
    preview: str
    # False when the format was recognised but the value failed its check (a Luhn-invalid
    # Visa number): never reported, but it silences lower-priority rules on its characters,
    # so a broken card number is not then reported as a phone number.
    reported: bool = True
    severity: Severity | None = None
    description: str | None = None


# -- context ------------------------------------------------------------------------------------

_CONTEXT_REACH = 48


def _context(words: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{words})", re.IGNORECASE)


_SSN_CONTEXT = _context(r"ssn|ss#|social\s+security|soc\.?\s*sec")
_STEUER_CONTEXT = _context(
    r"steuer|identifikationsnummer|idnr|id-nr|tin\b|tax\s*(?:id|identification)"
)
_PHONE_CONTEXT = _context(
    r"phone|tel\b|tel\.|telephone|mobile|cell|call|fax|sms|whatsapp|signal|contact|"
    r"telefon|t[ée]l[ée]phone|portable|handy|mobil|m[óo]vil|tel[ée]fono|numero|num[ée]ro"
)


def _near(pattern: re.Pattern[str], text: str, start: int) -> bool:
    return pattern.search(text, max(0, start - _CONTEXT_REACH), start) is not None


def _tail(value: str, n: int) -> str:
    return "…" + value[-n:]


# -- cards --------------------------------------------------------------------------------------

# Grouped forms keep one separator throughout: 4-4-4-4(-3), and Amex/Diners' 4-6-5 / 4-6-4.
_CARD = re.compile(
    r"(?<![\w+\-])(?<!\d[.,])(?:"
    r"\d{13,19}"
    r"|\d{4}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
    r"|\d{4}(?P<t>[ \-])\d{6}(?P=t)\d{4,5}"
    r")(?![\w\-])(?![.,]\d)"
)


def _cards(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.card"]
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ \-]", "", match.group())
        scheme = checks.card_scheme(digits)
        if scheme is None:
            continue  # not card-shaped at all: leave the digits to other rules
        preview = _tail(digits, 4)
        if not checks.luhn_ok(digits):
            yield _Candidate(match.start(), match.end(), rule, digits, preview, reported=False)
        elif digits in checks.TEST_CARDS:
            yield _Candidate(
                match.start(),
                match.end(),
                rule,
                digits,
                preview,
                severity=Severity.LOW,
                description=f"{scheme} test card number (published by payment providers)",
            )
        else:
            yield _Candidate(
                match.start(),
                match.end(),
                rule,
                digits,
                preview,
                description=f"{scheme} card number",
            )


# -- IBAN ---------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")


def _ibans(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.iban"]
    for match in _IBAN.finditer(text):
        raw = match.group()
        length = checks.IBAN_LENGTHS.get(raw[:2].upper())
        if length is None:
            continue
        # The regex runs on through following words ("… 0130 00 and more"); cut the match
        # where the country's length ends, which must be the end of a group.
        count, cut = 0, len(raw)
        for i, char in enumerate(raw):
            if char != " ":
                count += 1
                if count == length:
                    cut = i + 1
                    break
        if count < length or (cut < len(raw) and raw[cut] != " "):
            continue
        raw = raw[:cut]
        groups = raw.split(" ")
        if len(groups) > 1 and any(len(group) != 4 for group in groups[:-1]):
            continue  # print format is groups of four
        iban = raw.replace(" ", "").upper()
        yield _Candidate(
            match.start(),
            match.start() + cut,
            rule,
            iban,
            iban[:2] + _tail(iban, 4),
            reported=checks.iban_ok(iban),
        )


# -- national identifiers -----------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w\-])(\d{3})([ \-]?)(\d{2})\2(\d{4})(?![\w\-])")


def _ssns(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.us-ssn"]
    for match in _SSN.finditer(text):
        if match.group(2) != "-" and not _near(_SSN_CONTEXT, text, match.start()):
            continue
        digits = match.group(1) + match.group(3) + match.group(4)
        yield _Candidate(
            match.start(),
            match.end(),
            rule,
            digits,
            _tail(digits, 2),
            reported=checks.us_ssn_ok(digits),
        )


_NINO = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}( ?)\d{2}\1\d{2}\1\d{2}\1[A-D](?![A-Za-z0-9])")


def _ninos(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.uk-nino"]
    for match in _NINO.finditer(text):
        nino = match.group().replace(" ", "")
        if checks.nino_ok(nino):
            yield _Candidate(match.start(), match.end(), rule, nino, nino[:2] + "…")


_SPANISH_ID = re.compile(r"(?<![\w\-])(?:\d{8}|[XYZ]-?\d{7})-?[A-Z](?![\w\-])")


def _spanish_ids(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.es-dni"]
    for match in _SPANISH_ID.finditer(text):
        value = match.group().replace("-", "")
        yield _Candidate(
            match.start(),
            match.end(),
            rule,
            value,
            _tail(value, 2),
            reported=checks.spanish_id_ok(value),
        )


_STEUER_ID = re.compile(r"(?<![\w\-])\d{2}( ?)\d{3}\1\d{3}\1\d{3}(?![\w\-])")


def _steuer_ids(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.de-steuer-id"]
    for match in _STEUER_ID.finditer(text):
        if not _near(_STEUER_CONTEXT, text, match.start()):
            continue
        digits = match.group().replace(" ", "")
        yield _Candidate(
            match.start(),
            match.end(),
            rule,
            digits,
            _tail(digits, 2),
            reported=checks.steuer_id_ok(digits),
        )


_CODICE_FISCALE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z]"
    r"[0-9LMNPQRSTUV]{3}[A-Z](?![A-Za-z0-9])"
)


def _codici_fiscali(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.it-codice-fiscale"]
    for match in _CODICE_FISCALE.finditer(text):
        code = match.group()
        yield _Candidate(
            match.start(),
            match.end(),
            rule,
            code,
            _tail(code, 2),
            reported=checks.codice_fiscale_ok(code),
        )


_NIR = re.compile(
    r"(?<![\w\-])[12378]( ?)\d{2}\1\d{2}\1(?:\d{2}|2[AB])\1\d{3}\1\d{3}\1\d{2}(?![\w\-])"
)


def _nirs(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.fr-nir"]
    for match in _NIR.finditer(text):
        nir = match.group().replace(" ", "")
        yield _Candidate(
            match.start(), match.end(), rule, nir, _tail(nir, 2), reported=checks.nir_ok(nir)
        )


# -- email --------------------------------------------------------------------------------------

_LOCAL_TAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
_DOC_DOMAINS = ("example.com", "example.net", "example.org")
_DOC_TLDS = ("example", "test", "invalid", "localhost", "local")
_MAILTO = re.compile(r"mailto:\Z", re.IGNORECASE)
_ASSET_SUFFIXES = ("png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "avif")


def _emails(text: str) -> Iterator[_Candidate]:
    rule = RULES["pii.email"]
    at = text.find("@")
    while at != -1:
        if at == 0 or text[at - 1] not in _LOCAL_CHARS:
            at = text.find("@", at + 1)
            continue
        local_match = _LOCAL_TAIL.search(text, max(0, at - 64), at)
        domain_match = _DOMAIN.match(text, at + 1)
        if local_match is not None and domain_match is not None:
            local = local_match.group().lstrip(".")
            start = at - len(local)
            domain = domain_match.group().lower()
            if local and _email_plausible(text, start, local, domain, domain_match.end()):
                yield _Candidate(
                    start,
                    domain_match.end(),
                    rule,
                    f"{local}@{domain}",
                    (local[0] if len(local) >= 2 else "") + "…@" + domain,
                )
        at = text.find("@", at + 1)


def _email_plausible(text: str, start: int, local: str, domain: str, end: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after_colon = before == ":" and not _MAILTO.search(text, max(0, start - 7), start)
    if before.isalnum() or before == "/" or after_colon:
        return False  # inside a URL's userinfo (scheme://user:pass@host) or a longer token
    if ".." in local or local.endswith("."):
        return False
    labels = domain.split(".")
    if domain.endswith(_DOC_DOMAINS) or labels[-1] in _DOC_TLDS:
        return False
    if labels[-1] in _ASSET_SUFFIXES:
        return False  # icon@2x.png
    # git@github.com:org/repo is an SSH remote, not a person's address.
    return not (local == "git" and text.startswith(":", end))


# -- phone --------------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<![\w+/.\-])(?:\+|00)?\(?\d[\d \-.()\u00a0]{5,22}\d(?![\w\-])")
_PHONE_SEPARATORS = re.compile(r"[ \-.()\u00a0]+")
_DATE = re.compile(r"\d{1,4}([./\-])\d{1,2}\1\d{1,4}")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[_Candidate]:
    rule = RULES["pii.phone"]
    for match in _PHONE.finditer(text):
        raw = match.group()
        international = raw.startswith(("+", "00"))
        groups = [g for g in _PHONE_SEPARATORS.split(raw.lstrip("+")) if g]
        if not international:
            while len(groups) > 2 and len(groups[-1]) == 1:
                raw = _drop_last_group(raw, groups)  # "… 0958 2 times"
            if any(len(g) == 1 for g in groups[1:]):
                continue  # "1 2 3 4 5 6 7": counting, not dialling
            if len(groups) == 1 and not _near(_PHONE_CONTEXT, text, match.start()):
                continue  # a bare number is a phone only where the text says so
        digits = sum(c.isdigit() for c in raw)
        if not 7 <= digits <= 17 or _DATE.fullmatch(raw) or _DOTTED_QUAD.fullmatch(raw):
            continue
        found = _phone_number(raw, regions, grouped=len(groups) > 1)
        for _ in range(2):
            # "call 020 7946 0958 2 times": the run took in a trailing number; drop it.
            if found is not None or len(groups) < 3:
                break
            raw = _drop_last_group(raw, groups)
            found = _phone_number(raw, regions, grouped=True)
        if found is None:
            continue
        offset, length, e164, country = found
        start = match.start() + offset
        yield _Candidate(start, start + length, rule, e164, f"+{country}" + _tail(e164, 2))


@functools.cache
def _region_shape(
    region: str,
) -> tuple[re.Pattern[str] | None, re.Pattern[str], frozenset[int], str, re.Pattern[str] | None] | None:
    """(national prefix, national number pattern, lengths, calling code, international prefix)
    from libphonenumber's metadata."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return None
    general = metadata.general_desc
    if metadata.national_prefix_transform_rule or not general.national_number_pattern:
        return None  # the prefix rewrites the number: leave such regions to the library
    prefix = metadata.national_prefix_for_parsing or metadata.national_prefix
    return (
        re.compile(prefix) if prefix else None,
        re.compile(general.national_number_pattern),
        frozenset(general.possible_length or ()),
        str(metadata.country_code or ""),
        re.compile(metadata.international_prefix) if metadata.international_prefix else None,
    )


def national_number_plausible(digits: str, region: str) -> bool:
    """Whether ``digits``, dialled within ``region``, can be one of its valid numbers.

    A necessary condition only, checked against the region's general number pattern and
    lengths (with and without its national prefix and its calling code): it rules out most
    digit runs in microseconds, where parsing and validating them costs a hundred.
    """
    shape = _region_shape(region)
    if shape is None:
        return True
    prefix, pattern, lengths, calling_code, international = shape
    if international is not None and international.match(digits) is not None:
        return True  # dialled abroad ("0044 …"): another region's number, left to the library
    forms = [digits]
    # libphonenumber also reads a national number that starts with the region's own calling
    # code as that code followed by the number ("4930000" in DE is +49 30000).
    # Zeros after that code are dropped as well ("6100860053309" in AU is +61 860053309).
    if calling_code and digits.startswith(calling_code):
        if len(phonenumbers.region_codes_for_country_code(int(calling_code))) > 1:
            return True  # "1 310 6743" in US can be a number of Canada's: left to the library
        rest = digits[len(calling_code) :]
        forms += [rest, rest.lstrip("0")]
    if prefix is not None:
        for form in list(forms):
            if (match := prefix.match(form)) is not None and match.end():
                forms.append(form[match.end() :])
    return any(
        (not lengths or len(form) in lengths) and pattern.fullmatch(form) is not None
        for form in forms
    )


def _drop_last_group(raw: str, groups: list[str]) -> str:
    """``raw`` without its last digit group (popped from ``groups``) and the separator before."""
    return raw[: raw.rindex(groups.pop())].rstrip(" -.(\u00a0")


# Logs and tables repeat the same numbers: each distinct candidate is parsed once.
@functools.lru_cache(maxsize=4096)
def _phone_number(
    raw: str, regions: tuple[str, ...], *, grouped: bool
) -> tuple[int, int, str, int] | None:
    """(offset, length, E.164, country code) of a valid number in ``raw``, else None.

    ``0044 …`` is dialled from a region whose international prefix is 00 (not the US), so
    such numbers are tried in every region like national ones.
    """
    tries = regions[:1] if raw.startswith("+") else regions
    # Digits grouped as the region writes them tell a phone from an amount or an id; a bare
    # run has no grouping to check, and earned its place from a context word instead.
    leniency = Leniency.STRICT_GROUPING if grouped else Leniency.VALID
    national = not raw.startswith(("+", "00"))
    digits = "".join(c for c in raw if c.isdigit())
    for region in tries or ("US",):
        if national and not national_number_plausible(digits, region):
            continue
        # parse + is_valid_number costs a tenth of the matcher: most candidates stop here.
        try:
            if not phonenumbers.is_valid_number(phonenumbers.parse(raw, region)):
                continue
        except phonenumbers.NumberParseException:
            continue
        for found in PhoneNumberMatcher(raw, region, leniency=leniency):
            if sum(c.isdigit() for c in found.raw_string) < 7:
                continue
            number = found.number
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            return found.start, len(found.raw_string), e164, number.country_code or 0
    return None


# -- the scan -----------------------------------------------------------------------------------

_Finder = Callable[[str], Iterator[_Candidate]]
_FINDERS: tuple[_Finder, ...] = (
    _cards,
    _ibans,
    _ssns,
    _ninos,
    _spanish_ids,
    _steuer_ids,
    _codici_fiscali,
    _nirs,
    _emails,
)


def scan_text(
    text: str,
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    hash_key: bytes | None = None,
) -> Iterator[PiiMatch]:
    """Personal identifiers in ``text``, in order of position; lines are those of ``text``.

    ``regions`` are ISO 3166 codes where numbers without a country code are tried (an empty
    sequence finds international numbers only); ``hash_key`` turns digests into HMAC-SHA-256.
    """
    found: list[_Candidate] = []
    for finder in _FINDERS:
        found.extend(finder(text))
    found.extend(_phones(text, tuple(r.upper() for r in regions)))
    return iter(_to_matches(text, _resolve_overlaps(found), hash_key))


def scan_subject(
    subject: Subject,
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    hash_key: bytes | None = None,
) -> Iterator[PiiMatch]:
    """Personal identifiers in a subject, with line numbers of the original."""
    for match in scan_text(subject.text, regions=regions, hash_key=hash_key):
        yield replace(
            match,
            line=subject.original_line(match.line),
            end_line=subject.original_line(match.end_line),
        )


def _resolve_overlaps(found: list[_Candidate]) -> list[_Candidate]:
    """One candidate per stretch of text: higher priority first, then earlier and longer."""
    found.sort(key=lambda c: (-c.rule.priority, c.start, c.start - c.end))
    kept: list[_Candidate] = []
    taken: list[tuple[int, int]] = []  # sorted, disjoint
    for candidate in found:
        span = (candidate.start, candidate.end)
        if _overlaps(taken, *span):
            continue
        # A rejected candidate takes its span too, silencing lower-priority rules there.
        taken.insert(bisect.bisect_right(taken, span), span)
        if candidate.reported:
            kept.append(candidate)
    kept.sort(key=lambda c: (c.start, c.end, c.rule.id))
    return kept


def _overlaps(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect.bisect_right(taken, (start, end))
    if i > 0 and taken[i - 1][1] > start:
        return True
    return i < len(taken) and taken[i][0] < end


def _digest(value: str, key: bytes | None) -> str:
    data = value.encode("utf-8", "surrogatepass")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _to_matches(text: str, kept: list[_Candidate], key: bytes | None) -> list[PiiMatch]:
    matches: list[PiiMatch] = []
    line, line_start, position = 1, 0, 0
    for candidate in kept:
        newlines = text.count("\n", position, candidate.start)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", position, candidate.start) + 1
        position = candidate.start
        rule = candidate.rule
        matches.append(
            PiiMatch(
                rule_id=rule.id,
                severity=candidate.severity or rule.severity,
                line=line,
                column=candidate.start - line_start + 1,
                end_line=line + text.count("\n", candidate.start, candidate.end),
                preview=candidate.preview,
                sha256=_digest(candidate.canonical, key),
                description=candidate.description or rule.description,
            )
        )
    return matches


class PiiDetector:
    """Personal data in any text subject: a redacted preview and a digest, never the value."""

    name = "pii"

    def __init__(
        self, *, regions: Sequence[str] = DEFAULT_REGIONS, hash_key: bytes | None = None
    ) -> None:
        self.regions = tuple(r.upper() for r in regions)
        self._hash_key = hash_key

    def scan(self, subject: Subject) -> Iterator[Finding]:
        for match in scan_subject(subject, regions=self.regions, hash_key=self._hash_key):
            yield Finding(
                kind="pii",
                rule=match.rule_id,
                severity=match.severity,
                path=subject.path,
                start_line=match.line,
                end_line=match.end_line,
                message=match.description,
                match_hash=match.sha256,
                preview=match.preview,
                controls=CONTROLS,
            )
