"""Checksums and structure rules of personal identifiers: cards, IBANs and national numbers.

A regex finds something shaped like an identifier; these functions decide whether it is one.
Each is pure and takes the identifier in its canonical form (digits only, upper case, no
separators), so the tests can hold them against references of their own.

Sources: ISO/IEC 7812 (card numbers, Luhn) and the schemes' published IIN ranges; ISO 13616
and the SWIFT IBAN registry (lengths, ISO 7064 MOD 97-10); the US Social Security
Administration (never-issued areas, groups and serials); HMRC's NIM39110 (NINO prefixes);
Spain's Real Decreto 1553/2005 (DNI/NIE letter); Germany's § 139b AO and the BZSt check digit
(ISO 7064 MOD 11,10); Italy's DM 23/12/1976 (codice fiscale check character); INSEE (NIR key).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = [
    "IBAN_LENGTHS",
    "TEST_CARDS",
    "CardScheme",
    "card_scheme",
    "codice_fiscale_ok",
    "iban_ok",
    "luhn_ok",
    "nino_ok",
    "nir_ok",
    "spanish_id_ok",
    "steuer_id_ok",
    "us_ssn_ok",
]


# -- payment cards ------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 over a string of digits."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class CardScheme:
    name: str
    # (low, high) inclusive, compared on the number's first len(str(low)) digits.
    ranges: tuple[tuple[int, int], ...]
    lengths: frozenset[int]

    def matches(self, digits: str) -> bool:
        if len(digits) not in self.lengths:
            return False
        for low, high in self.ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return True
        return False


def _lengths(low: int, high: int) -> frozenset[int]:
    return frozenset(range(low, high + 1))


# Most specific first: Discover's 622126–622925 lies inside UnionPay's 62, Maestro's 6759
# beside Discover's 65, Mir's 2200–2204 below Mastercard's 2221–2720.
_SCHEMES: tuple[CardScheme, ...] = (
    CardScheme("American Express", ((34, 34), (37, 37)), frozenset({15})),
    CardScheme("Diners Club", ((300, 305), (3095, 3095), (36, 36), (38, 39)), _lengths(14, 19)),
    CardScheme("JCB", ((3528, 3589),), _lengths(16, 19)),
    CardScheme("Visa", ((4, 4),), frozenset({13, 16, 19})),
    CardScheme("Mastercard", ((51, 55), (2221, 2720)), frozenset({16})),
    CardScheme("Mir", ((2200, 2204),), _lengths(16, 19)),
    CardScheme(
        "Discover", ((6011, 6011), (622126, 622925), (644, 649), (65, 65)), _lengths(16, 19)
    ),
    CardScheme("UnionPay", ((62, 62), (81, 81)), _lengths(16, 19)),
    CardScheme(
        "Maestro",
        ((5018, 5018), (5020, 5020), (5038, 5038), (5893, 5893), (6304, 6304), (6759, 6763)),
        _lengths(13, 19),
    ),
)


def card_scheme(digits: str) -> str | None:
    """The card scheme whose IIN range and lengths ``digits`` fit, or None (no Luhn check)."""
    if not 13 <= len(digits) <= 19 or not digits.isdigit() or not digits.isascii():
        return None
    for scheme in _SCHEMES:
        if scheme.matches(digits):
            return scheme.name
    return None


TEST_CARDS: frozenset[str] = frozenset(
    {
        # Stripe's documented test cards.
        "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
        "5200828282828210", "5105105105105100", "378282246310005", "371449635398431",
        "6011111111111117", "6011000990139424", "3056930009020004", "36227206271667",
        "3566002020360505", "6200000000000005", "4000000000000002", "4000000000009995",
        # Published by PayPal, Braintree, Adyen and the card schemes' own test suites.
        "4111111111111111", "4012888888881881", "4222222222222", "5500000000000004",
        "5431111111111111", "340000000000009", "30000000000004", "6011000000000004",
        "3530111333300000", "4917610000000000", "4444333322221111",
    }
)  # fmt: skip
"""Card numbers printed in payment providers' documentation: valid cards, but test data."""


# -- IBAN ---------------------------------------------------------------------------------------

# The SWIFT IBAN registry: the total length of each country's IBAN.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Countries whose BBAN holds digits only (registry: "n" fields throughout).
_NUMERIC_BBAN = frozenset(
    {
        "AT", "BA", "BE", "CZ", "DE", "DK", "EE", "ES", "FI", "FO", "GL", "HR", "HU", "IL",
        "LT", "LU", "NO", "PL", "PT", "RS", "SE", "SI", "SK", "TN", "XK",
    }
)  # fmt: skip


def iban_ok(iban: str) -> bool:
    """Country, registry length, BBAN characters and the ISO 7064 MOD 97-10 check of an IBAN.

    ``iban`` is the electronic format: upper case, no spaces.
    """
    country = iban[:2]
    if IBAN_LENGTHS.get(country) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    if not iban[2:4].isdigit() or iban[2:4] in {"00", "01", "99"}:
        return False  # the algorithm only yields check digits 02–98
    bban = iban[4:]
    if country in _NUMERIC_BBAN and not bban.isdigit():
        return False
    rearranged = bban + iban[:4]
    # Letters count as two digits: A = 10 … Z = 35.
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return number % 97 == 1


# -- national identifiers -------------------------------------------------------------------------

# Numbers the SSA or others published in advertising and examples (the Woolworth wallet card).
_US_SSN_PUBLISHED = frozenset({"078051120", "219099999", "457555462", "123456789"})


def us_ssn_ok(digits: str) -> bool:
    """A US Social Security number that could have been issued (9 digits).

    Area 000, 666 and 900–999, group 00 and serial 0000 are never issued; numbers published in
    advertising and all-same-digit fillers are not someone's number either.
    """
    if len(digits) != 9 or not digits.isdigit() or not digits.isascii():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _US_SSN_PUBLISHED and len(set(digits)) > 1


# HMRC NIM39110: D, F, I, Q, U and V are never used as either prefix letter, O never second.
_NINO_FIRST = frozenset("ABCEGHJKLMNOPRSTWXYZ")
_NINO_SECOND = frozenset("ABCEGHJKLMNPRSTWXYZ")
_NINO_UNUSED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_ok(nino: str) -> bool:
    """A UK National Insurance number (``AB123456C``): prefix letters, six digits, suffix A–D."""
    if len(nino) != 9 or not nino.isascii():
        return False
    prefix, digits, suffix = nino[:2], nino[2:8], nino[8]
    return (
        prefix[0] in _NINO_FIRST
        and prefix[1] in _NINO_SECOND
        and prefix not in _NINO_UNUSED_PREFIXES
        and digits.isdigit()
        and suffix in "ABCD"
    )


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def spanish_id_ok(value: str) -> bool:
    """A Spanish DNI (``12345678Z``) or NIE (``X1234567L``) with its check letter."""
    if len(value) != 9 or not value.isascii():
        return False
    body, letter = value[:8], value[8]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    if not body.isdigit():
        return False
    return _DNI_LETTERS[int(body) % 23] == letter


def steuer_id_ok(digits: str) -> bool:
    """A German tax identification number (Steuer-IdNr., 11 digits).

    The first digit is not 0; among the first ten exactly one digit repeats (twice, or three
    times but never three in a row) and the rest occur once; the eleventh is the ISO 7064
    MOD 11,10 check digit.
    """
    if len(digits) != 11 or not digits.isdigit() or not digits.isascii() or digits[0] == "0":
        return False
    body = digits[:10]
    counts = sorted(Counter(body).values(), reverse=True)
    if counts[0] == 2:
        if counts[1:] != [1] * 8:
            return False
    elif counts[0] == 3:
        if counts[1:] != [1] * 7 or any(body[i] == body[i + 1] == body[i + 2] for i in range(8)):
            return False
    else:
        return False
    product = 10
    for char in body:
        total = (int(char) + product) % 10 or 10
        product = total * 2 % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


# Codice fiscale: characters in odd positions (1st, 3rd, …) are worth these values; even
# positions are worth the digit, or the letter's index (A = 0).
_CF_ODD_LETTERS = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16)
_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (*_CF_ODD_LETTERS[:10], *_CF_ODD_LETTERS, 10, 22, 25, 24, 23),
        strict=True,
    )
)
# Omocodia: when two people share a code, digits are replaced by these letters (0 → L …).
_CF_OMOCODIA = str.maketrans("LMNPQRSTUV", "0123456789")
_CF_MONTHS = "ABCDEHLMPRST"


def codice_fiscale_ok(code: str) -> bool:
    """An Italian codice fiscale (16 characters) with its check character and birth date fields."""
    if len(code) != 16 or not code.isascii() or not code.isalnum() or not code.isupper():
        return False
    if not code[:6].isalpha() or code[8] not in _CF_MONTHS or not code[11].isalpha():
        return False
    numeric = code[6:8] + code[9:11] + code[12:15]
    decoded = numeric.translate(_CF_OMOCODIA)
    if not decoded.isdigit():
        return False
    day = int(decoded[2:4])
    if not (1 <= day <= 31 or 41 <= day <= 71):  # women's days are +40
        return False
    total = 0
    for i, char in enumerate(code[:15]):
        if i % 2 == 0:
            total += _CF_ODD[char]
        else:
            total += int(char) if char.isdigit() else ord(char) - 65
    return chr(65 + total % 26) == code[15]


def nir_ok(nir: str) -> bool:
    """A French NIR (numéro de sécurité sociale): 13 characters and a two-digit key.

    The key is 97 minus the 13-digit number mod 97; Corsican departments 2A and 2B count as 19
    and 18. Sex 1, 2 (or 7, 8 for provisional numbers) and a month of 01–12, 20 or 30–99 (the
    codes INSEE uses for incomplete civil records) are required.
    """
    if len(nir) != 15 or not nir.isascii():
        return False
    body, key = nir[:13], nir[13:]
    if body[5:7] == "2A":
        body = body[:5] + "19" + body[7:]
    elif body[5:7] == "2B":
        body = body[:5] + "18" + body[7:]
    if not body.isdigit() or not key.isdigit() or body[0] not in "1278":
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or month == 20 or 30 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(key)
