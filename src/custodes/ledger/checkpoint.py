"""C2SP ``tlog-checkpoint``: the signed statement of a log's size and root hash.

The note text is three lines and optional extension lines, each ending in a newline::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 of the 32-byte root hash>
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from custodes.errors import MalformedNote
from custodes.ledger.note import Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root).decode(),
            *self.extensions,
        ]
        return "".join(f"{line}\n" for line in lines)

    def sign(self, signer: Signer) -> str:
        return sign_note(self.text(), signer)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        hint = "a checkpoint is the text printed by `custodes ledger checkpoint`"
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise MalformedNote("checkpoint text needs origin, size and root lines", hint=hint)
        origin, size_text, root_text, *extensions = lines[:-1]
        if not origin:
            raise MalformedNote("checkpoint origin line is empty", hint=hint)
        if (
            not size_text.isdigit()
            or not size_text.isascii()
            or (size_text != "0" and size_text.startswith("0"))
        ):
            raise MalformedNote(f"checkpoint size {size_text[:30]!r} is not a decimal", hint=hint)
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise MalformedNote("checkpoint root hash is not base64", hint=hint) from exc
        if len(root) != 32:
            raise MalformedNote("checkpoint root hash is not 32 bytes", hint=hint)
        if any(not line for line in extensions):
            raise MalformedNote("checkpoint has an empty extension line", hint=hint)
        return cls(origin, int(size_text), root, tuple(extensions))

    @classmethod
    def open(cls, signed: str, *verifiers: Verifier) -> Checkpoint:
        """Parse a signed checkpoint, requiring a valid signature by one of ``verifiers``."""
        return cls.from_text(open_note(signed, *verifiers).text)
