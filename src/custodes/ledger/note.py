"""C2SP ``signed-note`` with Ed25519 keys, byte-compatible with Go's ``golang.org/x/mod/sumdb/note``.

A note is UTF-8 text ending in a newline, a blank line, then one line per signature::

    — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature)>

The key id is the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``. Keys are
written the way Go writes them, so existing verifiers and witnesses take them unchanged::

    verifier: <name>+<key id, 8 hex digits>+<base64(0x01 || public key)>
    signer:   PRIVATE+KEY+<name>+<key id, 8 hex digits>+<base64(0x01 || private seed)>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from custodes.errors import MalformedNote, VerificationError

__all__ = [
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

_ALG_ED25519 = 0x01
_SIG_PREFIX = "— "
_MAX_SIGNATURES = 100


def key_id(name: str, public_key: bytes) -> int:
    """The 4-byte key id of an Ed25519 key named ``name``, as an unsigned integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([_ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNote(f"not valid base64: {text[:40]!r}") from exc


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise MalformedNote(
            f"invalid key name {name!r}",
            hint="a key name is non-empty, without spaces and without '+' (e.g. example.com/ledger)",
        )


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        vkey = vkey.strip()
        parts = vkey.split("+", 2)
        hint = "a verifier key looks like name+1a2b3c4d+AbC… (print it with `custodes ledger key`)"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise MalformedNote(f"malformed verifier key {vkey[:60]!r}", hint=hint)
        name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64)
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise MalformedNote("verifier key is not an Ed25519 key", hint=hint)
        try:
            wanted = int(hex_id, 16)
        except ValueError as exc:
            raise MalformedNote(f"malformed key id {hex_id!r}", hint=hint) from exc
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted:
            raise MalformedNote("verifier key id does not match its name and key", hint=hint)
        return verifier

    def to_string(self) -> str:
        b64 = base64.b64encode(bytes([_ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        _check_name(name)
        raw = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(name, raw)

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        skey = skey.strip()
        parts = skey.split("+", 4)
        hint = "a signing key looks like PRIVATE+KEY+name+1a2b3c4d+AbC… (created by `custodes ledger init`)"
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or len(parts[3]) != 8:
            raise MalformedNote("malformed signing key", hint=hint)
        name, hex_id, b64 = parts[2], parts[3], parts[4]
        _check_name(name)
        raw = _b64decode(b64)
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise MalformedNote("signing key is not an Ed25519 key", hint=hint)
        signer = cls(name, raw[1:])
        try:
            wanted = int(hex_id, 16)
        except ValueError as exc:
            raise MalformedNote(f"malformed key id {hex_id!r}", hint=hint) from exc
        if signer.verifier().key_id != wanted:
            raise MalformedNote("signing key id does not match its name and key", hint=hint)
        return signer

    def to_string(self) -> str:
        b64 = base64.b64encode(bytes([_ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id:08x}+{b64}"

    @cached_property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @cached_property
    def _verifier(self) -> Verifier:
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, public)

    def verifier(self) -> Verifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise MalformedNote("note text holds a control character")


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: ``text``, a blank line, one signature line per signer."""
    _check_text(text)
    message = text.encode()
    lines = []
    for signer in signers:
        blob = signer.verifier().key_id.to_bytes(4, "big") + signer.sign(message)
        lines.append(f"{_SIG_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n")
    return text + "\n" + "".join(lines)


def parse_note(message: str) -> Note:
    """Split a signed note into text and signatures without checking them."""
    if any(ord(ch) < 0x20 and ch != "\n" for ch in message):
        raise MalformedNote("signed note holds a control character")
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedNote("signed note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNote("signed note has no signature lines")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNote(f"not a signature line: {line[:60]!r}")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        blob = _b64decode(b64) if b64 else b""
        if not _valid_name(name) or len(blob) < 5:
            raise MalformedNote(f"malformed signature line for {name[:60]!r}")
        signatures.append(NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    if len(signatures) > _MAX_SIGNATURES:
        raise MalformedNote(f"signed note has more than {_MAX_SIGNATURES} signatures")
    return Note(text, tuple(signatures))


def open_note(message: str, *verifiers: Verifier) -> Note:
    """Parse ``message`` and require a valid signature by at least one of ``verifiers``.

    Signatures by unknown keys are ignored, as the specification asks; a signature that claims a
    known key but does not verify is an error.
    """
    note = parse_note(message)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text.encode(), sig.signature):
            raise VerificationError(
                f"the signature by {sig.name} does not verify: the note was altered or forged"
            )
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise VerificationError(
            f"the note carries no signature by a trusted key (trusted: {names})",
            hint="check that --key names the ledger's verifier key (`custodes ledger key`)",
        )
    return Note(note.text, tuple(verified))
