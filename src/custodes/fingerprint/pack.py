"""Fingerprint packs: a collection moved between indexes without its source text.

A pack is a zip archive of two members:

``pack.note``
    A C2SP signed note (Ed25519, the ledger's key) whose text names the pack format, the
    collection, its mode, the fingerprint version, the payload's size and SHA-256, and the
    signer's verifier key::

        custodes fingerprint pack
        format: 1
        collection: leak
        mode: deny
        fingerprint-version: 1
        payload: sha256:9f86d0… 123456
        key: acme.example/audit+1a2b3c4d+AbC…

``payload.json``
    The collection: per file its relative path, line and token counts, the SHA-256 of its
    content, and its fingerprints as packed little-endian columns in base64 (hash int64, layer
    uint8, position, start line and end line uint32). Hashes and line maps only: no source text.

Reading a pack checks, in order: the archive, the note's signature (by the pinned verifier key,
or else by the key the note names, which is reported), the payload's size and SHA-256 against
the signed note, the fingerprint version, and the payload's shape. Any failure raises
:class:`~custodes.errors.PackError` and nothing is imported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import sys
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custodes.errors import MalformedNote, PackError, UsageError, VerificationError
from custodes.fingerprint.index import (
    AddSummary,
    Collection,
    Columns,
    Index,
    Mode,
    check_collection_name,
)
from custodes.fingerprint.winnow import FINGERPRINT_VERSION
from custodes.ledger.note import Signer, Verifier, open_note, parse_note, sign_note

__all__ = ["PACK_FORMAT", "Pack", "PackFile", "export_pack", "import_pack", "read_pack"]

PACK_FORMAT = 1
_TITLE = "custodes fingerprint pack"
_NOTE = "pack.note"
_PAYLOAD = "payload.json"
_MAX_NOTE_BYTES = 64 * 1024
_MAX_PAYLOAD_BYTES = 4 << 30
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same collection, the same bytes
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_HINT = "ask for the pack again; it must be the file `custodes index export` wrote"

_WIDE = "i" if array("i").itemsize == 4 else "l"  # a 4-byte signed int on every platform


@dataclass(frozen=True)
class PackFile:
    path: str
    lines: int
    tokens: int
    sha256: str
    columns: Columns


@dataclass(frozen=True)
class Pack:
    collection: str
    mode: Mode
    created: str
    fingerprint_version: int
    files: tuple[PackFile, ...]
    signer: Verifier  # the key whose signature verified
    pinned: bool  # whether that key was the one the caller asked for

    @property
    def fingerprints(self) -> int:
        return sum(len(f.columns) for f in self.files)


# -- the payload at the edge -------------------------------------------------------------------


def _clean_path(value: str) -> str:
    if not value or len(value) > 4096 or any(ord(ch) < 0x20 for ch in value):
        raise ValueError("a path must be 1-4096 printable characters")
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError("a path must be relative and stay inside the collection")
    return value


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    lines: Annotated[int, Field(ge=0)]
    tokens: Annotated[int, Field(ge=0)]
    sha256: str
    fingerprints: Annotated[int, Field(ge=0)]
    hash: str
    layer: str
    position: str
    start_line: str
    end_line: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _clean_path(value)

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return value


class _PayloadModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str
    version: int
    collection: str
    mode: Mode
    created: str
    fingerprint_version: int
    files: list[_FileModel]


def _pack_column(values: array[int], code: str) -> str:
    packed = array(code, values)
    if sys.byteorder == "big":  # pragma: no cover - the pack is little-endian everywhere
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack_column(text: str, code: str, count: int, what: str) -> array[int]:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not base64") from exc
    out = array(code)
    if len(raw) != count * out.itemsize:
        raise ValueError(f"{what} holds {len(raw) // out.itemsize} values, not {count}")
    out.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        out.byteswap()
    return out


def _file_of(model: _FileModel) -> PackFile:
    n = model.fingerprints
    hashes = _unpack_column(model.hash, "q", n, "hash")
    layers = _unpack_column(model.layer, "B", n, "layer")
    positions = _unpack_column(model.position, _WIDE, n, "position")
    starts = _unpack_column(model.start_line, _WIDE, n, "start_line")
    ends = _unpack_column(model.end_line, _WIDE, n, "end_line")
    if any(h < 0 for h in hashes):
        raise ValueError("a fingerprint hash is negative")
    if any(layer > 1 for layer in layers):
        raise ValueError("a fingerprint layer is unknown")
    if len(set(zip(layers, positions, strict=True))) != n:
        raise ValueError("two fingerprints share a layer and position")
    columns = Columns(hashes, layers, array("l", positions), array("l", starts), array("l", ends))
    return PackFile(model.path, model.lines, model.tokens, model.sha256, columns)


# -- writing -----------------------------------------------------------------------------------


def export_pack(index: Index, name: str, signer: Signer) -> bytes:
    """The pack of collection ``name``, signed by ``signer``."""
    collection = index.collection(name)
    columns = index.columns(collection)
    files: list[dict[str, Any]] = []
    for file_id, path, lines, tokens, sha in index.file_rows(collection):
        cols = columns.get(file_id, Columns.empty())
        order = sorted(
            range(len(cols)), key=lambda i: (cols.layers[i], cols.positions[i])
        )
        files.append(
            {
                "path": path,
                "lines": lines,
                "tokens": tokens,
                "sha256": sha,
                "fingerprints": len(order),
                "hash": _pack_column(array("q", (cols.hashes[i] for i in order)), "q"),
                "layer": _pack_column(array("B", (cols.layers[i] for i in order)), "B"),
                "position": _pack_column(array("l", (cols.positions[i] for i in order)), _WIDE),
                "start_line": _pack_column(
                    array("l", (cols.start_lines[i] for i in order)), _WIDE
                ),
                "end_line": _pack_column(array("l", (cols.end_lines[i] for i in order)), _WIDE),
            }
        )
    payload = json.dumps(
        {
            "format": "custodes-fingerprint-pack",
            "version": PACK_FORMAT,
            "collection": collection.name,
            "mode": collection.mode.value,
            "created": collection.created,
            "fingerprint_version": collection.fingerprint_version,
            "files": files,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    note = sign_note(_note_text(collection, payload, signer.verifier()), signer)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(_NOTE, _ZIP_EPOCH), note)
        info = zipfile.ZipInfo(_PAYLOAD, _ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, payload)
    return out.getvalue()


def _note_text(collection: Collection, payload: bytes, verifier: Verifier) -> str:
    return (
        f"{_TITLE}\n"
        f"format: {PACK_FORMAT}\n"
        f"collection: {collection.name}\n"
        f"mode: {collection.mode.value}\n"
        f"fingerprint-version: {collection.fingerprint_version}\n"
        f"payload: sha256:{hashlib.sha256(payload).hexdigest()} {len(payload)}\n"
        f"key: {verifier.to_string()}\n"
    )


# -- reading -----------------------------------------------------------------------------------


def _fields(text: str) -> dict[str, str]:
    lines = text.rstrip("\n").split("\n")
    if not lines or lines[0] != _TITLE:
        raise PackError("the pack's note is not a custodes fingerprint pack note", hint=_HINT)
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if not sep or key in fields:
            raise PackError(f"malformed line in the pack's note: {line[:60]!r}", hint=_HINT)
        fields[key] = value
    wanted = {"format", "collection", "mode", "fingerprint-version", "payload", "key"}
    if set(fields) != wanted:
        raise PackError("the pack's note lacks or adds fields", hint=_HINT)
    return fields


def read_pack(data: bytes, *, verifier: Verifier | None = None) -> Pack:
    """Check and decode a pack; with ``verifier``, only a signature by that key is accepted."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = sorted(archive.namelist())
        if names != sorted([_NOTE, _PAYLOAD]):
            raise PackError(f"the pack holds {names}, not {[_NOTE, _PAYLOAD]}", hint=_HINT)
        note_info = archive.getinfo(_NOTE)
        if note_info.file_size > _MAX_NOTE_BYTES:
            raise PackError("the pack's note is too large", hint=_HINT)
        message = archive.read(_NOTE).decode("utf-8")
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise PackError(f"not a readable fingerprint pack: {exc}", hint=_HINT) from exc
    try:
        note = parse_note(message)
        fields = _fields(note.text)
        embedded = Verifier.from_string(fields["key"])
        trusted = verifier or embedded
        open_note(message, trusted)
    except MalformedNote as exc:
        raise PackError(f"the pack's note does not parse: {exc.message}", hint=_HINT) from exc
    except VerificationError as exc:
        if verifier is not None:
            raise PackError(
                "the pack is not signed by the pinned key "
                f"{verifier.name} ({verifier.key_id:08x}): {exc.message}",
                hint="check --verifier, or ask the pack's author which key signed it",
            ) from exc
        raise PackError(f"the pack's signature does not verify: {exc.message}", hint=_HINT) from exc
    if fields["format"] != str(PACK_FORMAT):
        raise PackError(
            f"pack format {fields['format']!r} is not {PACK_FORMAT}",
            hint="import it with the custodes version that exported it",
        )
    digest, size = _payload_claim(fields["payload"])
    try:
        info = archive.getinfo(_PAYLOAD)
        if info.file_size != size or size > _MAX_PAYLOAD_BYTES:
            raise PackError(
                f"the payload is {info.file_size} bytes, the signed note says {size}", hint=_HINT
            )
        payload = archive.read(_PAYLOAD)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise PackError(f"the pack's payload is corrupt: {exc}", hint=_HINT) from exc
    if hashlib.sha256(payload).hexdigest() != digest:
        raise PackError("the payload's SHA-256 does not match the signed note", hint=_HINT)
    if fields["fingerprint-version"] != str(FINGERPRINT_VERSION):
        raise PackError(
            f"the pack was fingerprinted with version {fields['fingerprint-version']}, "
            f"this custodes uses {FINGERPRINT_VERSION}",
            hint="export the collection again with a custodes of the same fingerprint version",
        )
    return _decode(payload, fields, trusted, pinned=verifier is not None)


def _payload_claim(value: str) -> tuple[str, int]:
    match = re.fullmatch(r"sha256:([0-9a-f]{64}) (0|[1-9][0-9]{0,15})", value)
    if match is None:
        raise PackError("malformed payload line in the pack's note", hint=_HINT)
    return match.group(1), int(match.group(2))


def _decode(payload: bytes, fields: dict[str, str], signer: Verifier, *, pinned: bool) -> Pack:
    try:
        model = _PayloadModel.model_validate_json(payload)
        files = tuple(_file_of(f) for f in model.files)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PackError(f"the pack's payload is malformed: {first}", hint=_HINT) from exc
    claims = {
        "collection": model.collection,
        "mode": model.mode.value,
        "fingerprint-version": str(model.fingerprint_version),
    }
    for key, value in claims.items():
        if fields[key] != value:
            raise PackError(f"the payload's {key} differs from the signed note's", hint=_HINT)
    if model.format != "custodes-fingerprint-pack" or model.version != PACK_FORMAT:
        raise PackError("the payload is not a custodes fingerprint pack", hint=_HINT)
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise PackError("the payload names a file twice", hint=_HINT)
    try:
        check_collection_name(model.collection)
    except UsageError as exc:
        raise PackError(f"the pack's collection name is invalid: {exc.message}") from exc
    return Pack(
        model.collection,
        model.mode,
        model.created,
        model.fingerprint_version,
        files,
        signer,
        pinned,
    )


def import_pack(index: Index, pack: Pack, *, name: str | None = None) -> AddSummary:
    """Add the pack's collection to ``index`` (as ``name`` if given); it must be new there."""
    target = check_collection_name(name or pack.collection)
    if any(c.name == target for c in index.collections()):
        raise PackError(
            f"collection {target!r} already exists in {index.path}",
            hint=f"remove it first (`custodes index remove {target}`) or import under another "
            "name with --collection NAME",
        )
    with index.writer(target, mode=pack.mode, created=pack.created, new=True) as writer:
        for f in pack.files:
            writer.add(f.path, lines=f.lines, tokens=f.tokens, sha256=f.sha256, columns=f.columns)
    return writer.summary()
