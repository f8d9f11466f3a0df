"""What a blob of bytes is: an archive or a source map (by name), binary or text (by content)."""

from __future__ import annotations

from typing import Final

from custodes.subject import MEMBER_SEPARATOR

__all__ = [
    "BINARY_SNIFF_BYTES",
    "decode_text",
    "is_archive_name",
    "is_source_map_name",
    "looks_binary",
    "may_carry_inline_map",
]

BINARY_SNIFF_BYTES: Final = 8192
"""How much of the start of a blob decides whether it is binary."""

_MAX_CONTROL_SHARE: Final = 0.30

# Bytes that appear in text: the printable range and 0x80-0xff (UTF-8 and legacy encodings),
# plus BEL, BS, TAB, LF, FF, CR and ESC (terminal colour codes in logs). NUL is handled apart.
_TEXT_BYTES: Final = bytes(sorted({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F}))

_ARCHIVE_SUFFIXES: Final = (
    ".tar",
    ".tgz",
    ".tar.gz",
    ".taz",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".gem",  # a tar holding data.tar.gz
    ".crate",  # a tgz
    ".zip",
    ".whl",
    ".egg",
    ".jar",
    ".war",
    ".ear",
    ".aar",
    ".nupkg",
    ".vsix",
    ".xpi",
)

_INLINE_MAP_SUFFIXES: Final = (".js", ".mjs", ".cjs")


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(MEMBER_SEPARATOR, 1)[-1].lower()


def is_archive_name(path: str) -> bool:
    """Whether ``path`` names an archive custodes opens (tar family, zip family)."""
    return _name(path).endswith(_ARCHIVE_SUFFIXES)


def is_source_map_name(path: str) -> bool:
    return _name(path).endswith(".map")


def may_carry_inline_map(path: str) -> bool:
    """Whether ``path`` names JavaScript, which bundlers end with an inline source map."""
    return _name(path).endswith(_INLINE_MAP_SUFFIXES)


def looks_binary(data: bytes) -> bool:
    """Whether ``data`` is binary: a NUL byte, or too many control bytes, near its start."""
    head = data[:BINARY_SNIFF_BYTES]
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = len(head.translate(None, _TEXT_BYTES))
    return control / len(head) > _MAX_CONTROL_SHARE


def decode_text(data: bytes) -> str:
    """UTF-8 text, a byte-order mark dropped; invalid bytes become U+FFFD so the rest is scanned."""
    return data.decode("utf-8-sig", errors="replace")
