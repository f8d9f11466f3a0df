"""What proves no copying: boilerplate lines, and files that are generated or minified.

Every file of a project carries the same licence header and much the same imports; two files
sharing them share no code. :func:`boilerplate_lines` names those lines so that they yield no
fingerprint. Blank lines yield none anyway.

:func:`classify` reports files not worth fingerprinting at all — generated code (protocol
buffers, lock files, anything marked ``@generated`` or ``DO NOT EDIT``) and minified bundles —
so that the caller records them as skipped rather than skipping them silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final

from custodes.sources.languages import language_of
from custodes.subject import SkipReason

__all__ = ["boilerplate_lines", "classify", "licence_header_lines"]

# -- licence headers ----------------------------------------------------------------------------

_LICENCE: Final = re.compile(
    r"SPDX-License-Identifier|Copyright\b|\(c\)\s*\d{4}|©|Licensed under|Permission is hereby "
    r"granted|All rights reserved|GNU (?:Lesser |Affero )?General Public License|Apache License|"
    r"THE SOFTWARE IS PROVIDED|Mozilla Public License|Redistribution and use in source",
    re.IGNORECASE,
)
_SPDX_LINE: Final = re.compile(r"^[^\n]*SPDX-License-Identifier[^\n]*$", re.MULTILINE)
_SPDX_AFTER_NEWLINE: Final = re.compile(r"\n(?:" + _SPDX_LINE.pattern + ")", re.MULTILINE)

_HASH = ("#",)
_SLASH = ("//", "/*", "*", "*/")
# Line starts that make a line a comment, by language (the others: any of these).
_COMMENT_STARTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "python": _HASH,
        "ruby": (*_HASH, "=begin", "=end"),
        "shell": _HASH,
        "perl": _HASH,
        "php": (*_SLASH, *_HASH, "<?php"),
        "lua": ("--",),
        "sql": ("--", "/*", "*", "*/"),
    }
)
_ANY_COMMENT = (*_SLASH, *_HASH, "--", ";", "<!--", "-->", "=begin", "=end")
_DOCSTRING_OPENER: Final = re.compile(r"[rRuU]?(\"\"\"|''')")


def _header_end(lines: list[str], language: str | None) -> int:
    """How many of ``lines`` form the header: comments, blanks, a module docstring, a shebang."""
    starts = _COMMENT_STARTS.get(language or "", _SLASH if language else _ANY_COMMENT)
    end = 0
    in_block = ""  # the closer of the block comment or docstring the header is inside
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if in_block:
            end = number
            if in_block in line:
                in_block = ""
            continue
        if not line or line.startswith("#!") or line.startswith(starts):
            end = number
            if line.startswith("/*") and "*/" not in line[2:]:
                in_block = "*/"
            continue
        docstring = _DOCSTRING_OPENER.match(line) if language in (None, "python") else None
        if docstring is not None:
            end = number
            quote = docstring.group(1)
            if quote not in line[docstring.end() :]:
                in_block = quote
            continue
        break
    return end


_HEADER_LINES = 400  # a header is never longer; a huge file is never split whole


def licence_header_lines(text: str, language: str | None) -> range:
    """The lines (1-based) of a licence or copyright header at the top of ``text``, if any.

    The header is the run of comment and blank lines (a Python module docstring too) before the
    first line of code; it counts only when it names a licence or a copyright.
    """
    lines = text.split("\n", _HEADER_LINES)[:_HEADER_LINES]
    end = _header_end(lines, language)
    if end and _LICENCE.search("\n".join(lines[:end])):
        return range(1, end + 1)
    return range(0)


# -- import-like lines --------------------------------------------------------------------------

_C_INCLUDES = r"^[ \t]*#[ \t]*(?:include|import)\b[^\n]*|^[ \t]*#[ \t]*pragma[ \t]+once\b[^\n]*"
_PACKAGE_IMPORT = r"^[ \t]*(?:package|import)\b[^\n]*"
_IMPORTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "python": (
            r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]*\([^)]*\)[^\n]*"
            r"|^[ \t]*(?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+[^\n]*"
        ),
        "javascript": (
            r"^[ \t]*import[ \t]*(?:type[ \t]+)?(?:[\w$]+[ \t]*,[ \t]*)?\{[^}]*\}[^\n]*"
            r"|^[ \t]*import(?![ \t]*\()\b[^\n]*"
            r"|^[ \t]*export[ \t]+(?:\*|\{[^}]*\})[ \t]*from\b[^\n]*"
            r"|^[ \t]*(?:const|let|var)[ \t]+[^=\n]+=[ \t]*require[ \t]*\([^)\n]*\)[^\n]*"
            r"|^[ \t]*require[ \t]*\([^)\n]*\)[ \t]*;?[ \t]*$"
            r"|^[ \t]*['\"]use strict['\"][ \t]*;?[ \t]*$"
        ),
        "java": _PACKAGE_IMPORT,
        "kotlin": _PACKAGE_IMPORT,
        "scala": _PACKAGE_IMPORT,
        "groovy": _PACKAGE_IMPORT,
        "dart": r"^[ \t]*(?:import|export|library|part)\b[^\n]*",
        "go": r"^[ \t]*package\b[^\n]*|^[ \t]*import[ \t]*\([^)]*\)|^[ \t]*import\b[^\n]*",
        "c": _C_INCLUDES,
        "cpp": _C_INCLUDES + r"|^[ \t]*using[ \t]+namespace\b[^\n]*",
        "csharp": (
            r"^[ \t]*(?:global[ \t]+)?using[ \t]+(?:static[ \t]+)?[\w.]+"
            r"(?:[ \t]*=[ \t]*[\w.<>, ]+)?[ \t]*;[^\n]*"
            r"|^[ \t]*namespace[ \t]+[\w.]+[ \t]*;[^\n]*"
        ),
        "rust": (
            r"^[ \t]*(?:pub(?:\([^)\n]*\))?[ \t]+)?use\b[^;]*;[^\n]*"
            r"|^[ \t]*extern[ \t]+crate\b[^\n]*|^[ \t]*(?:pub[ \t]+)?mod[ \t]+\w+[ \t]*;[^\n]*"
        ),
        "ruby": r"^[ \t]*(?:require|require_relative|load)\b[^\n]*",
        "php": (
            r"^[ \t]*(?:use|namespace|require|require_once|include|include_once)\b[^\n]*"
            r"|^[ \t]*<\?php[ \t]*$"
        ),
        "swift": r"^[ \t]*(?:@testable[ \t]+)?import\b[^\n]*",
        "shell": r"^[ \t]*(?:source|\.)[ \t]+[^\n]*",
    }
)
_GENERIC_IMPORTS = (
    r"^[ \t]*#[ \t]*include\b[^\n]*|^[ \t]*(?:import|package)\b[^\n]*"
    r"|^[ \t]*from[ \t]+[\w.]+[ \t]+import\b[^\n]*|^[ \t]*using[ \t]+[\w.]+[ \t]*;[^\n]*"
    r"|^[ \t]*(?:require|use)\b[^\n]*;[ \t]*$"
)
_IMPORT_PATTERNS: Final[Mapping[str, re.Pattern[str]]] = MappingProxyType(
    {
        **{name: re.compile(regex, re.MULTILINE) for name, regex in _IMPORTS.items()},
        "typescript": re.compile(_IMPORTS["javascript"], re.MULTILINE),
        "tsx": re.compile(_IMPORTS["javascript"], re.MULTILINE),
        "": re.compile(_GENERIC_IMPORTS, re.MULTILINE),
    }
)


# Each pattern behind a newline: every match of these patterns starts a line, and a pattern that
# starts with a literal lets the regex engine skip from newline to newline instead of trying
# each alternative at every character (about a third of the time).
_IMPORT_AFTER_NEWLINE: Final[Mapping[str, re.Pattern[str]]] = MappingProxyType(
    {name: re.compile(r"\n(?:" + p.pattern + ")", re.MULTILINE) for name, p in _IMPORT_PATTERNS.items()}
)


def _line_matches(
    pattern: re.Pattern[str], after_newline: re.Pattern[str], text: str
) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern whose matches all start lines, the later ones
    found by ``after_newline`` (the pattern behind ``\\n``)."""
    match = pattern.match(text)
    position = 0
    while True:
        if match is not None:
            yield match
            # The next match starts at or after this one's end: its newline lies at or after
            # the character before that end.
            position = max(match.end() - 1, match.start())
        found = after_newline.search(text, position)
        if found is None:
            return
        match = pattern.match(text, found.start() + 1)  # what ``found`` matched behind "\n"
        position = found.start() + 1


def boilerplate_lines(text: str, language: str | None) -> frozenset[int]:
    """Lines (1-based) of ``text`` that must yield no fingerprint.

    A licence or copyright header at the top, ``SPDX-License-Identifier`` lines anywhere, and
    the import-like lines of the language: imports, includes, package, namespace, using,
    require and use declarations (a parenthesised or braced one across all its lines). Blank
    lines are not listed: they yield no fingerprint in any case.
    """
    lines: set[int] = set(licence_header_lines(text, language))
    name = language or ""
    pattern = _IMPORT_PATTERNS.get(name, _IMPORT_PATTERNS[""])
    at_newline = _IMPORT_AFTER_NEWLINE.get(name, _IMPORT_AFTER_NEWLINE[""])
    # A text without the identifier cannot match its pattern, which tries every line.
    spdx = ("SPDX-License-Identifier" in text) * ((_SPDX_LINE, _SPDX_AFTER_NEWLINE),)
    for regex, after_newline in ((pattern, at_newline), *spdx):
        line, offset = 1, 0
        for match in _line_matches(regex, after_newline, text):
            start, end = match.span()
            line += text.count("\n", offset, start)
            span = match.group().rstrip("\n").count("\n")
            lines.update(range(line, line + span + 1))
            line += text.count("\n", start, end)
            offset = end
    return frozenset(lines)


# -- generated and minified files ---------------------------------------------------------------

_GENERATED_NAMES: Final = re.compile(
    r"(?:_pb2(?:_grpc)?\.pyi?|\.pb\.(?:go|cc|h|c)|\.pb\.gw\.go|_grpc\.pb\.go|\.pb\.swift"
    r"|\.min\.(?:js|mjs|cjs|css)|\.bundle\.js|-bundle\.js|\.designer\.cs|\.g\.(?:cs|dart)"
    r"|\.freezed\.dart|_generated\.\w+|\.generated\.\w+"
    r"|package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|bun\.lockb"
    r"|Cargo\.lock|poetry\.lock|Pipfile\.lock|uv\.lock|pdm\.lock|Gemfile\.lock"
    r"|composer\.lock|go\.sum|mix\.lock|pubspec\.lock|Package\.resolved|packages\.lock\.json"
    r"|flake\.lock|gradle\.lockfile)$"
)
# Generators' own words; "do not edit" alone is also what people write over hand-tuned code.
_GENERATED_MARKS: Final = re.compile(
    r"@generated\b|\bDO NOT EDIT\b|\bCode generated by\b|Generated by the protocol buffer "
    r"compiler|(?i:\bwarning: do not edit\b)"
    r"|(?i:\b(?:this|the) (?:file|code|module|header|source) (?:is|was|has been) "
    r"(?:auto-?|automatically |machine[- ])?generated\b)"
    r"|(?im:^[^\w\n]*(?:auto-?|automatically |machine[- ])generated\b)"
)
_GENERATED_HEAD = 4096  # the marks live in a file's header comment (Go's rule, linguist's habit)
_MINIFIED_AVERAGE = 200  # characters per line
_MINIFIED_LINE = 1000
_MINIFIED_SPACE = 0.05  # a dense line: less whitespace than this
_MINIFIED_SHARE = 0.5  # of the text in dense long lines
_LONG_LINE: Final = re.compile(f"^[^\n]{{{_MINIFIED_LINE + 1}}}", re.MULTILINE)  # from line starts only


def classify(path: str, text: str) -> SkipReason | None:
    """``GENERATED`` or ``MINIFIED`` when ``text`` (named ``path``) is not worth fingerprinting.

    Generated: a generator's file name (``*_pb2.py``, ``*.pb.go``, ``*.min.js``, lock files…)
    or a generator's mark near the top (``@generated``, ``DO NOT EDIT``, ``Code generated
    by``…) in the comments at its top. Minified: lines of more than 200 characters on average, or most of the text in
    lines of over 1,000 characters with almost no whitespace. Else None.
    """
    name = path.rsplit("/", 1)[-1].rsplit("!", 1)[-1]
    if _GENERATED_NAMES.search(name):
        return SkipReason.GENERATED
    lines = text[:_GENERATED_HEAD].split("\n")
    header = "\n".join(lines[: _header_end(lines, language_of(path))])
    if _GENERATED_MARKS.search(header):
        return SkipReason.GENERATED
    if _minified(text):
        return SkipReason.MINIFIED
    return None


def _minified(text: str) -> bool:
    size = len(text)
    if size < _MINIFIED_LINE:
        return False
    lines = text.count("\n") + 1
    if size / lines > _MINIFIED_AVERAGE:
        return True
    if _LONG_LINE.search(text) is None:
        return False
    dense = 0
    for line in text.split("\n"):
        length = len(line)
        if length > _MINIFIED_LINE:
            spaces = line.count(" ") + line.count("\t")
            if spaces < length * _MINIFIED_SPACE:
                dense += length
    return dense >= size * _MINIFIED_SHARE
