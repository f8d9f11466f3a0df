"""The programming language of a file, guessed from its name's extension."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from custodes.subject import MEMBER_SEPARATOR

__all__ = ["LANGUAGES", "language_of"]

# Lower-case language names, one per grammar a detector may care about: jsx is parsed as
# JavaScript, but tsx has its own grammar and so its own name.
_BY_EXTENSION: Final[Mapping[str, str]] = MappingProxyType(
    {
        "py": "python",
        "pyi": "python",
        "pyw": "python",
        "js": "javascript",
        "mjs": "javascript",
        "cjs": "javascript",
        "jsx": "javascript",
        "ts": "typescript",
        "mts": "typescript",
        "cts": "typescript",
        "tsx": "tsx",
        "java": "java",
        "go": "go",
        "c": "c",
        "h": "c",
        "cc": "cpp",
        "cpp": "cpp",
        "cxx": "cpp",
        "c++": "cpp",
        "hh": "cpp",
        "hpp": "cpp",
        "hxx": "cpp",
        "cs": "csharp",
        "rs": "rust",
        "rb": "ruby",
        "php": "php",
        "kt": "kotlin",
        "kts": "kotlin",
        "swift": "swift",
        "scala": "scala",
        "sh": "shell",
        "bash": "shell",
        "zsh": "shell",
        "ps1": "powershell",
        "lua": "lua",
        "pl": "perl",
        "pm": "perl",
        "dart": "dart",
        "ex": "elixir",
        "exs": "elixir",
        "erl": "erlang",
        "hs": "haskell",
        "clj": "clojure",
        "groovy": "groovy",
        "gradle": "groovy",
        "jl": "julia",
        "zig": "zig",
        "sql": "sql",
        "vue": "vue",
        "svelte": "svelte",
    }
)


LANGUAGES: Final[frozenset[str]] = frozenset(_BY_EXTENSION.values())
"""Every language name :func:`language_of` returns (policies name them in ``languages``)."""


def language_of(path: str) -> str | None:
    """The language of the file named by ``path`` (POSIX, possibly ``!``-joined), or None."""
    name = path.rsplit("/", 1)[-1].rsplit(MEMBER_SEPARATOR, 1)[-1]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile such as ".bashrc"
        return None
    return _BY_EXTENSION.get(extension.lower())
