"""Errors of custodes, each carrying a hint that tells the user what to do.

The hierarchy, and the exit code the command line maps each branch to::

    Error                       3  something went wrong inside custodes (a bug)
    ├── UsageError              2  the input or the options are wrong; the hint says how to fix them
    │   ├── LedgerNotFound         no ledger at the given database
    │   ├── LedgerCorrupt          the database is not a readable custodes ledger
    │   ├── LedgerExists           `init` over a ledger that already exists
    │   ├── KeyFileError           a signing key file that is missing, unreadable or malformed
    │   ├── KeyMismatch            a signing key that is not the ledger's
    │   ├── IndexOutOfRange        an entry index or tree size beyond the ledger
    │   ├── InvalidEntry           an entry that is not a JSON object custodes can canonicalise
    │   ├── MalformedNote          a checkpoint, signed note or verifier key that does not parse
    │   ├── MalformedBaseline      a baseline file that is missing or does not parse (names the line)
    │   ├── FingerprintIndexError  a provenance index that is missing, unreadable or out of date
    │   ├── CollectionNotFound     no collection of that name in the provenance index
    │   ├── PackError              a fingerprint pack that is malformed, altered or wrongly signed
    │   └── InvalidPolicy          a policy pack that does not load (each fault as FILE:LINE)
    └── VerificationError       1  a check failed: a signature, a proof, the ledger's integrity

Third-party errors are mapped to these at the boundary (``raise … from exc``) so that callers
catch one root type.
"""

from __future__ import annotations

__all__ = [
    "CollectionNotFound",
    "Error",
    "FingerprintIndexError",
    "IndexOutOfRange",
    "InvalidEntry",
    "InvalidPolicy",
    "KeyFileError",
    "KeyMismatch",
    "LedgerCorrupt",
    "LedgerExists",
    "LedgerNotFound",
    "MalformedBaseline",
    "MalformedNote",
    "PackError",
    "UsageError",
    "VerificationError",
]


class Error(Exception):
    """The root of every error custodes raises on purpose."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """One line for a person: what went wrong, then what to do about it."""
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(Error):
    """The input or options are wrong; nothing was changed."""

    exit_code = 2


class LedgerNotFound(UsageError):
    pass


class LedgerCorrupt(UsageError):
    pass


class LedgerExists(UsageError):
    pass


class KeyFileError(UsageError):
    pass


class KeyMismatch(UsageError):
    pass


class IndexOutOfRange(UsageError):
    pass


class InvalidEntry(UsageError):
    pass


class MalformedNote(UsageError):
    pass


class MalformedBaseline(UsageError):
    pass


class FingerprintIndexError(UsageError):
    pass


class CollectionNotFound(UsageError):
    pass


class PackError(UsageError):
    pass


class InvalidPolicy(UsageError):
    pass


class VerificationError(Error):
    """A signature, proof or integrity check failed."""

    exit_code = 1
