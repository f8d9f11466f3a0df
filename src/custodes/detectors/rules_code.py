"""What the Python and JavaScript rules see of code: its imports and calls, language-neutral.

Each language's reader (:mod:`rules_python`, :mod:`rules_js`) turns a source into
:class:`Site` records — one per import and per call — with the names resolved through import
aliases (``import requests as r; r.get()`` is a call of ``requests.get``) and simple
assignments (``client = OpenAI()`` makes ``client.chat.completions.create`` a call of
``openai.OpenAI().chat.completions.create``). :func:`matches` then judges one rule on one site,
the same way for both languages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from custodes.policy.model import CodeCheck

__all__ = [
    "DYNAMIC",
    "EVERYTHING",
    "Reading",
    "Site",
    "matches",
    "possible",
    "preview",
    "reading_for",
    "words_of",
]


class _Dynamic:
    """The value of a keyword argument that is not a literal."""

    def __repr__(self) -> str:
        return "DYNAMIC"


DYNAMIC: Final = _Dynamic()


@dataclass(frozen=True)
class Reading:
    """What a reader works out beyond names: the costly facts, only when a rule asks."""

    origins: bool = True  # which calls' results reach each first argument
    formatting: bool = True  # which arguments are built by string formatting


EVERYTHING: Final = Reading()


def reading_for(checks: Sequence[CodeCheck]) -> Reading:
    return Reading(
        origins=any(c.arguments_from for c in checks),
        formatting=any(c.formatted_arguments for c in checks),
    )


@dataclass(frozen=True)
class Site:
    """One import or call in a source; offsets are bytes of its UTF-8 encoding.

    ``name`` is the resolved dotted name: a module (``import``), or a callee, where ``X()``
    stands for what calling ``X`` returned and ``new X`` for a JavaScript constructor call.
    """

    kind: str  # "import" or "call"
    name: str
    line: int  # 1-based lines of the source handed to the reader
    end_line: int
    start: int
    end: int
    module: str = ""  # for an import: the module itself (``from m import n`` names m.n)
    keywords: Mapping[str, object] = field(default_factory=dict)  # literal value or DYNAMIC
    open_keywords: bool = False  # **kwargs / a spread / an options object not written inline
    dynamic: frozenset[int] = frozenset()  # positions of arguments that are not literals
    first_origins: frozenset[str] = frozenset()  # calls whose results reach the first argument
    formatted: frozenset[str | int] = frozenset()  # arguments built by string formatting


def matches(check: CodeCheck, site: Site) -> bool:
    """Whether the rule ``check`` selects ``site``."""
    if check.imports:
        return site.kind == "import" and (
            check.imports.match(site.name) or bool(site.module and check.imports.match(site.module))
        )
    if site.kind != "call":
        return False
    if check.calls and not check.calls.match(site.name):
        return False
    for name, wanted in check.keywords:
        value = site.keywords.get(name, _ABSENT)
        if value is _ABSENT or value is DYNAMIC or value != wanted or type(value) is not type(wanted):
            # bool is an int in Python: `verify=0` is not `verify: false`, nor is `shell=1` true.
            return False
    if check.arguments == "dynamic" and 0 not in site.dynamic:
        return False
    if check.arguments == "any-dynamic" and not site.dynamic:
        return False
    if check.arguments_from and not check.arguments_from.any(site.first_origins):
        return False
    if check.without_keywords and (
        site.open_keywords or any(name in site.keywords for name in check.without_keywords)
    ):
        return False
    return not check.formatted_arguments or any(a in site.formatted for a in check.formatted_arguments)


_ABSENT: Final = object()


def preview(site: Site) -> str:
    """A short description of the site that shows no argument: ``requests.get(…)``."""
    if site.kind == "import":
        return f"import {site.name}"
    return f"{site.name}(…)"


_WORD: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{2,}")


def words_of(check: CodeCheck) -> tuple[tuple[frozenset[str], ...], ...]:
    """Groups of alternatives of words a source must contain for ``check`` to possibly match.

    Every identifier in a resolved name comes from the source's own text (an import, an
    attribute), so a source lacking one of a pattern's words cannot match that pattern. Each
    group must be met by one of its alternatives (all of whose words occur); no group means
    the check cannot be ruled out by words.
    """
    if check.imports:
        return (_alternatives(check.imports.patterns),)
    keywords = frozenset(name for name, _ in check.keywords)
    calls = _alternatives(check.calls.patterns) if check.calls else (frozenset(),)
    groups = [tuple(words | keywords for words in calls)]
    if check.arguments_from:
        groups.append(_alternatives(check.arguments_from.patterns))
    # An alternative of no words rules nothing out, and neither does its group.
    return tuple(alternatives for alternatives in groups if all(alternatives))


def _alternatives(patterns: Sequence[str]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(_WORD.findall(p.removeprefix("new "))) for p in patterns)


def possible(groups: tuple[tuple[frozenset[str], ...], ...], text: str) -> bool:
    return all(any(all(w in text for w in words) for words in group) for group in groups)
