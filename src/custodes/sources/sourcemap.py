"""Source Map v3: the original sources a bundle carries in ``sourcesContent``.

A published bundle with a source map that embeds its sources publishes those sources: this is
how whole proprietary code bases leak through npm. Each embedded source becomes a subject named
``<map path>!<source name>``, the name normalised to a relative POSIX path, so findings point
at lines of the original file (line 1 of the subject is line 1 of the source).

Maps come from strangers: malformed JSON or fields of the wrong type become
:class:`~custodes.subject.Skipped` records (corrupt-archive, the detail saying "source map"),
never exceptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Final
from urllib.parse import unquote

from custodes.sources.languages import language_of
from custodes.subject import MEMBER_SEPARATOR, Skipped, SkipReason, Subject, SubjectKind

__all__ = [
    "has_inline_source_map",
    "inline_source_map",
    "normalise_source_name",
    "read_source_map",
]

# An indexed map's sections hold plain maps; nesting deeper than this is not a real bundle.
_MAX_SECTION_DEPTH: Final = 8

# "webpack://", "webpack:///", "file://", "webpack-internal:///": a scheme and its slashes.
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_DRIVE: Final = re.compile(r"^[A-Za-z]:")
# Source maps may start with a line that stops the JSON being run as a script (XSSI guard).
_XSSI_PREFIX: Final = ")]}"

_INLINE_KEY: Final = "sourceMappingURL=data:"
_INLINE: Final = re.compile(
    r"(?://|/\*)[#@][ \t]*(?P<key>sourceMappingURL=data:)application/json(?P<params>[^,\s]*),"
    r"(?P<payload>[^\s*'\"`]+)"
)


class _MapError(Exception):
    pass


def normalise_source_name(name: str, source_root: str = "") -> str:
    """A source name as a relative POSIX path that cannot climb out of its map.

    Schemes (``webpack://``, ``file://``) and their query strings go, backslashes become
    slashes, drive letters and leading slashes are dropped, ``.`` segments vanish and ``..``
    segments are resolved without ever rising above the top. The result may be empty.
    """
    if source_root and not _SCHEME.match(name):
        name = source_root + ("" if source_root.endswith("/") else "/") + name
    scheme = _SCHEME.match(name)
    if scheme:
        # Bundlers tag module ids with a query or fragment (App.vue?5a3b); it is no part of a path.
        name = re.split(r"[?#]", name[scheme.end() :], maxsplit=1)[0]
    parts: list[str] = []
    for segment in name.replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    # A drive letter can only be told from a folder named "C:" at the front, which is also
    # where "x/../C:/y" ends up once resolved.
    while parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:]
        if not parts[0]:
            del parts[0]
    return "/".join(parts)


def read_source_map(text: str, display_path: str) -> Iterator[Subject | Skipped]:
    """The embedded sources of the source map ``text`` (read from ``display_path``)."""
    try:
        document = _load(text)
    except _MapError as exc:
        yield Skipped(display_path, SkipReason.CORRUPT_ARCHIVE, f"source map: {exc}")
        return
    yield from _sources(document, display_path, depth=0)


def _load(text: str) -> dict[str, object]:
    if text.startswith(_XSSI_PREFIX):
        text = text.partition("\n")[2]
    try:
        document = json.loads(text)
    except RecursionError:
        raise _MapError("JSON nested too deeply") from None
    except ValueError as exc:
        raise _MapError(f"invalid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _MapError("not a JSON object")
    return document


def _corrupt(path: str, detail: str) -> Skipped:
    return Skipped(path, SkipReason.CORRUPT_ARCHIVE, f"source map: {detail}")


def _sources(
    document: dict[str, object], display_path: str, *, depth: int
) -> Iterator[Subject | Skipped]:
    if "sections" in document:
        yield from _sections(document["sections"], display_path, depth=depth)
        return
    sources = document.get("sources")
    contents = document.get("sourcesContent")
    root = document.get("sourceRoot")
    if not isinstance(sources, list):
        yield _corrupt(display_path, "'sources' is missing or not a list")
        return
    if contents is None:  # a map that points at its sources instead of embedding them
        return
    if not isinstance(contents, list):
        yield _corrupt(display_path, "'sourcesContent' is not a list")
        return
    if root is not None and not isinstance(root, str):
        yield _corrupt(display_path, "'sourceRoot' is not a string; ignored")
        root = None
    for index, content in enumerate(contents):
        if content is None:
            continue
        name = sources[index] if index < len(sources) else None
        fallback = f"source-{index}"
        if not isinstance(content, str) or not (name is None or isinstance(name, str)):
            yield _corrupt(
                display_path + MEMBER_SEPARATOR + fallback,
                f"sources[{index}] or sourcesContent[{index}] is not a string",
            )
            continue
        path = normalise_source_name(name, root or "") if name else ""
        path = path or fallback
        yield Subject(
            path=display_path + MEMBER_SEPARATOR + path,
            text=content,
            kind=SubjectKind.SOURCE,
            language=language_of(path),
        )


def _sections(sections: object, display_path: str, *, depth: int) -> Iterator[Subject | Skipped]:
    if not isinstance(sections, list):
        yield _corrupt(display_path, "'sections' is not a list")
        return
    if depth >= _MAX_SECTION_DEPTH:
        yield _corrupt(display_path, f"sections nested more than {_MAX_SECTION_DEPTH} deep")
        return
    for index, section in enumerate(sections):
        inner = section.get("map") if isinstance(section, dict) else None
        if isinstance(section, dict) and inner is None:
            continue  # a section with a "url" points at another file: nothing embedded here
        if not isinstance(inner, dict):
            yield _corrupt(display_path, f"sections[{index}] holds no map object")
            continue
        yield from _sources(inner, display_path, depth=depth + 1)


def _find_inline(js_text: str) -> re.Match[str] | None:
    # The comment conventionally ends the file; look only at the last candidate, from just
    # before its keyword, so a multi-megabyte bundle is not searched from the top.
    at = js_text.rfind(_INLINE_KEY)
    if at < 0:
        return None
    match = _INLINE.search(js_text, max(0, at - 16))
    if match is None or match.start("key") != at:
        return None
    return match


def has_inline_source_map(js_text: str) -> bool:
    """Whether ``js_text`` has a ``//# sourceMappingURL=data:application/json…`` comment."""
    return _find_inline(js_text) is not None


def inline_source_map(js_text: str) -> str | None:
    """The JSON of the source map inlined as a ``data:`` URL in ``js_text``, or None.

    Both ``//# sourceMappingURL=`` and the older ``//@`` form are read, base64 or URL-encoded.
    None also when the payload does not decode; :func:`has_inline_source_map` tells the two
    apart.
    """
    match = _find_inline(js_text)
    if match is None:
        return None
    payload = match["payload"]
    if match["params"].lower().rstrip(";").endswith(";base64"):
        # Some tools write the URL-safe alphabet or drop the padding.
        payload = payload.replace("-", "+").replace("_", "/")
        payload += "=" * (-len(payload) % 4)
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw.decode("utf-8-sig", errors="replace")
    return unquote(payload, errors="replace")
